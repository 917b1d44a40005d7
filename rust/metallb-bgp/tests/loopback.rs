//! The speaker against a scripted BGP peer on loopback, no privileges: the peer is a TCP listener that speaks
//! through metallb-core's codec, so each test says exactly what the other end sends and checks every byte
//! the speaker sends back. Real routers (FRR, GoBGP, BIRD) are the Python netns tests' job.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use metallb_bgp::{
    parse_prefix, parse_route, AddOutcome, BgpError, EventKind, PeerAsn, PeerConfig, Prefix, Route, Speaker,
    SpeakerConfig, State,
};
use metallb_core::bgp::{
    decode, encode, encode_to_vec, Afi, AsSegment, Capability, CodecOptions, ErrorAction, Message, Notification, Open,
    PathAttributes, RouteRefresh, Safi, Update,
};

const MY_ASN: u32 = 64512;
const PEER_ASN: u32 = 64513;
const PEER_ID: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 254);
/// Long enough for any wait on a loaded machine; only stops a hang.
const PATIENCE: Duration = Duration::from_secs(20);

/// The other end: accepts the speaker's connections.
struct TestPeer {
    listener: TcpListener,
}

impl TestPeer {
    fn new() -> TestPeer {
        TestPeer { listener: TcpListener::bind("127.0.0.1:0").unwrap() }
    }

    fn port(&self) -> u16 {
        self.listener.local_addr().unwrap().port()
    }

    fn accept(&self) -> Wire {
        self.listener.set_nonblocking(true).unwrap();
        let deadline = Instant::now() + PATIENCE;
        loop {
            match self.listener.accept() {
                Ok((stream, _)) => {
                    stream.set_nonblocking(false).unwrap();
                    stream.set_read_timeout(Some(PATIENCE)).unwrap();
                    return Wire { stream, buf: Vec::new(), opts: CodecOptions { four_octet_as: true } };
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    assert!(Instant::now() < deadline, "the speaker never connected");
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(e) => panic!("accept: {e}"),
            }
        }
    }
}

/// One accepted connection, read and written as BGP messages.
struct Wire {
    stream: TcpStream,
    buf: Vec<u8>,
    opts: CodecOptions,
}

impl Wire {
    /// The next message, or None when the speaker closed the connection.
    fn recv(&mut self) -> Option<Message> {
        loop {
            if let Some((message, used)) = decode(&self.buf, &self.opts).unwrap() {
                self.buf.drain(..used);
                return Some(message);
            }
            let mut chunk = [0; 65536];
            let n = self.stream.read(&mut chunk).expect("the speaker said nothing in time");
            if n == 0 {
                return None;
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Like [`recv`](Wire::recv), but a connection reset also ends the stream (what came before it counts).
    fn recv_or_reset(&mut self) -> Option<Message> {
        loop {
            if let Some((message, used)) = decode(&self.buf, &self.opts).unwrap() {
                self.buf.drain(..used);
                return Some(message);
            }
            let mut chunk = [0; 65536];
            match self.stream.read(&mut chunk) {
                Ok(0) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return None,
                Err(e) => panic!("the speaker said nothing in time: {e}"),
            }
        }
    }

    fn expect(&mut self) -> Message {
        self.recv().expect("a message, not the end of the connection")
    }

    fn expect_open(&mut self) -> Open {
        let Message::Open(open) = self.expect() else { panic!("the speaker starts with OPEN") };
        open
    }

    fn send(&mut self, message: Message) {
        let mut bytes = Vec::new();
        encode(&message, &self.opts, &mut bytes).unwrap();
        self.stream.write_all(&bytes).unwrap();
    }

    /// An UPDATE whose ORIGIN is 7: well framed, so RFC 7606 treats it as a withdrawal of its prefix.
    fn send_update_with_a_bad_origin(&mut self) {
        let update = Update {
            attributes: PathAttributes {
                as_path: vec![AsSegment::Sequence(vec![PEER_ASN])],
                next_hop: Some(PEER_ID),
                ..PathAttributes::default()
            },
            nlri: vec![prefix("203.0.113.7/32")],
            ..Update::default()
        };
        let mut bytes = encode_to_vec(&Message::Update(update), &self.opts).unwrap();
        // Header (19), withdrawn routes length (2), path attributes length (2), then ORIGIN's flags, type
        // and length: its value is octet 26.
        assert_eq!(&bytes[23..26], &[0x40, 1, 1], "ORIGIN comes first");
        bytes[26] = 7;
        let err = decode(&bytes, &self.opts).unwrap_err();
        assert_eq!(err.action(), ErrorAction::TreatAsWithdraw, "{err}");
        self.stream.write_all(&bytes).unwrap();
    }

    /// Reads the speaker's OPEN, answers with ours (AS `asn`) and a KEEPALIVE, and reads its KEEPALIVE.
    fn handshake(&mut self, asn: u32) -> Open {
        let open = self.expect_open();
        self.send(Message::Open(peer_open(asn)));
        self.send(Message::Keepalive);
        assert_eq!(self.expect(), Message::Keepalive);
        open
    }

    /// UPDATEs until `done` says the routes seen so far are complete; KEEPALIVEs in between are skipped.
    fn updates_until(&mut self, mut done: impl FnMut(&[Update]) -> bool) -> Vec<Update> {
        let mut updates = Vec::new();
        while !done(&updates) {
            match self.expect() {
                Message::Update(u) => updates.push(u),
                Message::Keepalive => {}
                other => panic!("expected UPDATEs, got {other:?}"),
            }
        }
        updates
    }

    /// The next message that is not a KEEPALIVE, or None at the end of the connection.
    fn next_not_keepalive(&mut self) -> Option<Message> {
        loop {
            match self.recv()? {
                Message::Keepalive => {}
                other => return Some(other),
            }
        }
    }
}

fn peer_open(asn: u32) -> Open {
    Open {
        asn,
        hold_time: 90,
        router_id: PEER_ID,
        capabilities: vec![
            Capability::Multiprotocol(Afi::Ipv4, Safi::Unicast),
            Capability::Multiprotocol(Afi::Ipv6, Safi::Unicast),
            Capability::RouteRefresh,
            Capability::FourOctetAs(asn),
        ],
    }
}

fn config(name: &str, port: u16) -> PeerConfig {
    let mut config = PeerConfig::new(
        name,
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        MY_ASN,
        PeerAsn::Fixed(PEER_ASN),
        "192.0.2.1".parse().unwrap(),
    );
    config.port = port;
    config.connect_time = Duration::from_secs(2);
    config
}

fn speaker() -> Speaker {
    Speaker::start(SpeakerConfig::default()).unwrap()
}

/// A speaker with one peer, "router" (its configuration as `tweak` leaves it), whose connection to the
/// scripted peer is accepted: the speaker's OPEN is on its way.
fn connected(tweak: impl FnOnce(&mut PeerConfig)) -> (TestPeer, Speaker, Wire) {
    let peer = TestPeer::new();
    let speaker = speaker();
    let mut router = config("router", peer.port());
    tweak(&mut router);
    assert_eq!(speaker.add_peer(router).unwrap(), AddOutcome::Added);
    let wire = peer.accept();
    (peer, speaker, wire)
}

/// [`connected`], and the session established.
fn established(tweak: impl FnOnce(&mut PeerConfig)) -> (TestPeer, Speaker, Wire) {
    let (peer, speaker, mut wire) = connected(tweak);
    wire.handshake(PEER_ASN);
    (peer, speaker, wire)
}

/// `count` IPv4 host routes from 10.0.0.0 up, without attributes.
fn host_routes(count: u32) -> BTreeMap<Prefix, Route> {
    (0..count).map(|i| (Prefix::host(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i))), Route::default())).collect()
}

fn wait_event(speaker: &Speaker, peer: &str, kind: EventKind) -> metallb_bgp::Event {
    let deadline = Instant::now() + PATIENCE;
    let mut seen = Vec::new();
    while let Some(event) = speaker.next_event(Some(deadline.saturating_duration_since(Instant::now()))) {
        if event.peer == peer && event.kind == kind {
            return event;
        }
        seen.push(event);
    }
    panic!("no {kind:?} event for {peer}; saw {seen:?}");
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A loopback listener nobody accepts from, its accept queue full: the kernel drops further SYNs, so a
/// connection attempt to it neither succeeds nor fails. Keep all three alive while it is used.
fn unanswering_listener() -> (TcpListener, u16, Vec<TcpStream>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    let mut queued = Vec::new();
    loop {
        match TcpStream::connect_timeout(&address, Duration::from_millis(200)) {
            Ok(stream) => queued.push(stream),
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => break,
            Err(e) => panic!("filling the accept queue: {e}"),
        }
        assert!(queued.len() < 10_000, "the accept queue never filled");
    }
    (listener, address.port(), queued)
}

fn prefix(text: &str) -> Prefix {
    parse_prefix(text).unwrap()
}

fn announced(updates: &[Update]) -> Vec<Prefix> {
    let mut out: Vec<Prefix> = updates
        .iter()
        .flat_map(|u| u.nlri.iter().chain(u.attributes.mp_reach.iter().flat_map(|m| &m.nlri)))
        .copied()
        .collect();
    out.sort();
    out
}

#[test]
fn routes_with_attributes_reach_the_peer_and_withdrawals_follow() {
    let (peer, speaker, mut wire) = connected(|_| {});
    let open = wire.handshake(PEER_ASN);
    assert_eq!(open.asn, MY_ASN);
    assert!(open.capabilities.contains(&Capability::Multiprotocol(Afi::Ipv6, Safi::Unicast)));
    let up = wait_event(&speaker, "router", EventKind::Up);
    assert!(up.reason.contains("AS 64513"), "{}", up.reason);

    let route = parse_route(Some(300), &["65000:100"], &["large:65000:1:2"]).unwrap();
    let routes = BTreeMap::from([(prefix("198.51.100.10/32"), route.clone()), (prefix("2001:db8::10/128"), route)]);
    speaker.set_routes("router", routes.clone()).unwrap();
    let updates = wire.updates_until(|u| !announced(u).is_empty());
    assert_eq!(announced(&updates), vec![prefix("198.51.100.10/32")]);
    let attrs = &updates[0].attributes;
    assert_eq!(attrs.next_hop, Some(Ipv4Addr::LOCALHOST), "the session's own address");
    assert_eq!(attrs.communities, vec![(65000 << 16) | 100]);
    assert_eq!(attrs.large_communities, vec![(65000, 1, 2)]);
    assert_eq!(attrs.local_pref, None, "LOCAL_PREF is for iBGP only");

    // Loopback has no global IPv6 address: the IPv6 route waits, and the status says why.
    let status = speaker.peer("router").unwrap();
    assert_eq!((status.prefixes_configured, status.prefixes_advertised, status.prefixes_pending), (2, 1, 1));
    assert!(status.unsendable.as_deref().unwrap().contains("set next_hop_v6"), "{:?}", status.unsendable);

    // A next hop is a route matter: the session stays, the routes go out again with it.
    let mut with_hop = config("router", peer.port());
    with_hop.next_hop_v6 = Some("2001:db8::1".parse().unwrap());
    assert_eq!(speaker.add_peer(with_hop.clone()).unwrap(), AddOutcome::NextHopsChanged);
    assert_eq!(speaker.add_peer(with_hop).unwrap(), AddOutcome::Unchanged);
    let updates = wire.updates_until(|u| announced(u).len() == 2);
    assert_eq!(announced(&updates), vec![prefix("198.51.100.10/32"), prefix("2001:db8::10/128")]);
    let v6 = updates.iter().find_map(|u| u.attributes.mp_reach.as_ref()).unwrap();
    assert_eq!(v6.next_hops, vec!["2001:db8::1".parse::<IpAddr>().unwrap()]);
    wait_until("nothing pending", || speaker.peer("router").unwrap().prefixes_pending == 0);

    assert!(speaker.withdraw("router", prefix("198.51.100.10/32")).unwrap());
    assert!(!speaker.withdraw("router", prefix("198.51.100.10/32")).unwrap());
    let updates = wire.updates_until(|u| !u.is_empty());
    assert_eq!(updates[0].withdrawn, vec![prefix("198.51.100.10/32")]);

    let status = speaker.peer("router").unwrap();
    assert_eq!(status.state, State::Established);
    assert_eq!(status.counters.established, 1, "no reset along the way");
    assert_eq!(status.counters.opens_sent, 1);
    assert_eq!(status.counters.prefixes_withdrawn, 1);
    assert!(status.counters.updates_sent >= 3);
    assert_eq!(status.local_address.unwrap().ip(), IpAddr::V4(Ipv4Addr::LOCALHOST));
    let negotiated = status.negotiated.unwrap();
    assert_eq!((negotiated.peer_asn, negotiated.hold_time, negotiated.keepalive), (PEER_ASN, 90, 30));
    speaker.stop();
}

#[test]
fn remove_peer_and_stop_send_their_cease() {
    let (a, b) = (TestPeer::new(), TestPeer::new());
    let speaker = speaker();
    speaker.add_peer(config("a", a.port())).unwrap();
    speaker.add_peer(config("b", b.port())).unwrap();
    let (mut wire_a, mut wire_b) = (a.accept(), b.accept());
    wire_a.handshake(PEER_ASN);
    wire_b.handshake(PEER_ASN);
    wait_event(&speaker, "a", EventKind::Up);
    wait_event(&speaker, "b", EventKind::Up);

    assert!(speaker.remove_peer("a").unwrap());
    assert!(!speaker.remove_peer("a").unwrap());
    let cease = Notification { code: 6, subcode: 3, data: Vec::new() };
    assert_eq!(wire_a.next_not_keepalive(), Some(Message::Notification(cease)));
    assert_eq!(wire_a.recv(), None, "then the connection closes");
    assert!(speaker.peer("a").is_none());
    assert!(matches!(speaker.set_routes("a", BTreeMap::new()), Err(BgpError::UnknownPeer(_))));

    speaker.stop();
    let cease = Notification { code: 6, subcode: 2, data: Vec::new() };
    assert_eq!(wire_b.next_not_keepalive(), Some(Message::Notification(cease)));
    assert_eq!(wire_b.recv(), None);
    assert!(!speaker.is_running());
    assert!(matches!(speaker.add_peer(config("c", b.port())), Err(BgpError::NotRunning)));
}

#[test]
fn changed_session_parameters_restart_with_a_cease_and_routes_do_not() {
    let (peer, speaker, mut wire) = established(|_| {});
    speaker.advertise("router", prefix("198.51.100.10/32"), Route::default()).unwrap();
    wire.updates_until(|u| !announced(u).is_empty());

    let mut changed = config("router", peer.port());
    changed.hold_time = Duration::from_secs(30);
    assert_eq!(speaker.add_peer(changed).unwrap(), AddOutcome::Restarted);
    let cease = Notification { code: 6, subcode: 6, data: Vec::new() };
    assert_eq!(wire.next_not_keepalive(), Some(Message::Notification(cease)));
    let mut wire = peer.accept();
    let open = wire.handshake(PEER_ASN);
    assert_eq!(open.hold_time, 30);
    // The routes survive the reset and go to the new session.
    let updates = wire.updates_until(|u| !announced(u).is_empty());
    assert_eq!(announced(&updates), vec![prefix("198.51.100.10/32")]);
    // Events come after the snapshot that shows them: once the second Up is read, the counters have it.
    wait_event(&speaker, "router", EventKind::Up);
    let down = wait_event(&speaker, "router", EventKind::Down);
    assert_eq!(down.notification, Some((6, 6)));
    wait_event(&speaker, "router", EventKind::Up);
    let status = speaker.peer("router").unwrap();
    assert_eq!(status.counters.established, 2);
    assert_eq!(status.counters.notifications_sent, 1);
}

#[test]
fn a_peer_with_the_wrong_asn_is_refused_with_bad_peer_as() {
    let (_peer, speaker, mut wire) = connected(|_| {});
    wire.expect_open();
    wire.send(Message::Open(peer_open(65099)));
    let Some(Message::Notification(n)) = wire.next_not_keepalive() else { panic!("a NOTIFICATION") };
    assert_eq!((n.code, n.subcode), (2, 2));
    let sent = wait_event(&speaker, "router", EventKind::NotificationSent);
    assert_eq!(sent.notification, Some((2, 2)));
    let down = wait_event(&speaker, "router", EventKind::Down);
    assert!(down.reason.contains("bad peer AS") && down.reason.contains("peer AS 65099"), "{}", down.reason);
    let status = speaker.peer("router").unwrap();
    assert_eq!(status.counters.notifications_sent, 1);
    assert!(status.last_error.unwrap().contains("bad peer AS"));
}

#[test]
fn a_peer_that_refuses_us_is_reported_in_words() {
    let (peer, speaker, mut wire) = connected(|_| {});
    wire.expect_open();
    wire.send(Message::Notification(Notification { code: 2, subcode: 2, data: Vec::new() }));
    let refused = wait_event(&speaker, "router", EventKind::NotificationReceived);
    assert_eq!(refused.notification, Some((2, 2)));
    assert_eq!(refused.reason, "notification received: OPEN message error / bad peer AS (2/2)");
    wait_event(&speaker, "router", EventKind::Down);
    let status = speaker.peer("router").unwrap();
    assert_eq!(status.counters.notifications_received, 1);
    assert_ne!(status.state, State::Established);
    // It tries again (with backoff): the next connection arrives.
    peer.accept();
}

#[test]
fn an_unreachable_peer_is_a_connect_failure_and_others_carry_on() {
    let closed_port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let good = TestPeer::new();
    let speaker = speaker();
    speaker.add_peer(config("nobody", closed_port)).unwrap();
    speaker.add_peer(config("router", good.port())).unwrap();
    let failed = wait_event(&speaker, "nobody", EventKind::ConnectFailed);
    assert!(failed.reason.contains("refused"), "{}", failed.reason);
    good.accept().handshake(PEER_ASN);
    wait_event(&speaker, "router", EventKind::Up);
    let status = speaker.peer("nobody").unwrap();
    assert!(status.counters.connect_failures >= 1 && status.counters.connect_attempts >= 1);
    assert!(status.last_error.unwrap().contains("refused"));
}

#[test]
fn bad_input_is_refused_and_changes_nothing() {
    let peer = TestPeer::new();
    let speaker = speaker();
    let mut v4_only = config("router", peer.port());
    v4_only.families.ipv6 = false;
    speaker.add_peer(v4_only).unwrap();
    let routes = BTreeMap::from([
        (prefix("198.51.100.10/32"), Route::default()),
        (prefix("2001:db8::10/128"), Route::default()),
    ]);
    let err = speaker.set_routes("router", routes).unwrap_err();
    assert_eq!(
        err.to_string(),
        "prefix 2001:db8::10/128 is ipv6, but peer \"router\" carries ipv4 only (add the family to its families)"
    );
    assert_eq!(speaker.peer("router").unwrap().prefixes_configured, 0, "nothing of it was kept");
    let mut bad = config("router", peer.port());
    bad.hold_time = Duration::from_secs(2);
    assert!(matches!(speaker.add_peer(bad), Err(BgpError::InvalidPeer { .. })));
    assert_eq!(speaker.peer("router").unwrap().address, SocketAddr::from((Ipv4Addr::LOCALHOST, peer.port())));
    assert!(matches!(speaker.withdraw("nobody", prefix("198.51.100.10/32")), Err(BgpError::UnknownPeer(_))));
}

#[test]
fn a_large_table_arrives_whole() {
    let (_peer, speaker, mut wire) = established(|_| {});
    speaker.set_routes("router", host_routes(20_000)).unwrap();
    let mut count = 0;
    wire.updates_until(|u| {
        count = u.iter().map(|u| u.nlri.len()).sum::<usize>();
        count >= 20_000
    });
    assert_eq!(count, 20_000);
    wait_until("all sent", || speaker.peer("router").unwrap().prefixes_advertised == 20_000);
    let status = speaker.peer("router").unwrap();
    assert_eq!(status.counters.prefixes_announced, 20_000);
    assert!(status.counters.updates_sent < 200, "prefixes share UPDATEs: {}", status.counters.updates_sent);
}

#[test]
fn an_update_treated_as_a_withdrawal_still_counts_as_heard_from_the_peer() {
    let (_peer, speaker, mut wire) = established(|c| c.hold_time = Duration::from_secs(3));
    speaker.advertise("router", prefix("198.51.100.10/32"), Route::default()).unwrap();
    wire.updates_until(|u| !announced(u).is_empty());

    // A peer busy sending UPDATEs sends no KEEPALIVEs (RFC 4271 restarts its keepalive timer on every
    // message): for longer than the hold time it sends only UPDATEs that RFC 7606 turns into withdrawals.
    let until = Instant::now() + Duration::from_millis(4500);
    while Instant::now() < until {
        wire.send_update_with_a_bad_origin();
        std::thread::sleep(Duration::from_millis(300));
    }
    // Still up: a ROUTE-REFRESH is answered with our route, not with a hold timer NOTIFICATION (4/0).
    wire.send(Message::RouteRefresh(RouteRefresh { afi: Afi::Ipv4, safi: Safi::Unicast }));
    match wire.next_not_keepalive() {
        Some(Message::Update(update)) => assert_eq!(update.nlri, vec![prefix("198.51.100.10/32")]),
        other => panic!("the session ended: {other:?}"),
    }
    let status = speaker.peer("router").unwrap();
    assert_eq!((status.state, status.counters.established), (State::Established, 1));
    assert!(status.counters.updates_received >= 10, "they were UPDATEs: {:?}", status.counters);
    assert!(status.last_error.unwrap().contains("ORIGIN"));
}

#[test]
fn an_update_before_established_is_an_fsm_error_even_when_malformed() {
    let (_peer, speaker, mut wire) = connected(|_| {});
    wire.expect_open();
    wire.send_update_with_a_bad_origin();
    let Some(Message::Notification(n)) = wire.next_not_keepalive() else { panic!("a NOTIFICATION") };
    assert_eq!((n.code, n.subcode), (5, 1), "unexpected message in OpenSent");
    let down = wait_event(&speaker, "router", EventKind::Down);
    assert!(down.reason.contains("UPDATE received in OpenSent"), "{}", down.reason);
}

#[test]
fn bytes_that_are_not_bgp_get_a_notification_then_a_new_connection() {
    let (peer, speaker, mut wire) = established(|_| {});
    wire.stream.write_all(&[0u8; 19]).unwrap();
    let Some(Message::Notification(n)) = wire.next_not_keepalive() else { panic!("a NOTIFICATION") };
    assert_eq!((n.code, n.subcode), (1, 1), "connection not synchronized");
    assert_eq!(wire.recv(), None, "then the connection closes");
    let down = wait_event(&speaker, "router", EventKind::Down);
    assert_eq!(down.notification, Some((1, 1)));
    // And it starts over.
    peer.accept().handshake(PEER_ASN);
    wait_event(&speaker, "router", EventKind::Up);
}

#[test]
fn a_connection_attempt_gives_up_after_connect_time() {
    let (_listener, port, _queued) = unanswering_listener();
    let speaker = speaker();
    let mut slow = config("router", port);
    slow.connect_time = Duration::from_millis(500);
    speaker.add_peer(slow).unwrap();
    let failed = wait_event(&speaker, "router", EventKind::ConnectFailed);
    assert!(failed.reason.contains("no connection within 0.5 s"), "{}", failed.reason);
    let status = speaker.peer("router").unwrap();
    assert!(status.counters.connect_failures >= 1);
    assert_ne!(status.state, State::Established);
    speaker.stop();
}

#[test]
fn add_peer_while_the_open_is_unanswered() {
    let (peer, speaker, mut first) = connected(|_| {});
    first.expect_open();
    // The same parameters leave the waiting session alone: it completes on the same connection.
    assert_eq!(speaker.add_peer(config("router", peer.port())).unwrap(), AddOutcome::Unchanged);
    first.send(Message::Open(peer_open(PEER_ASN)));
    first.send(Message::Keepalive);
    assert_eq!(first.expect(), Message::Keepalive);
    wait_event(&speaker, "router", EventKind::Up);

    // Changed parameters while the next OPEN waits: Cease 6/6 on that connection, a new one.
    speaker.remove_peer("router").unwrap();
    speaker.add_peer(config("router", peer.port())).unwrap();
    let mut second = peer.accept();
    second.expect_open();
    let mut changed = config("router", peer.port());
    changed.hold_time = Duration::from_secs(30);
    assert_eq!(speaker.add_peer(changed).unwrap(), AddOutcome::Restarted);
    let cease = Notification { code: 6, subcode: 6, data: Vec::new() };
    assert_eq!(second.next_not_keepalive(), Some(Message::Notification(cease)));
    assert_eq!(second.recv(), None);
    let open = peer.accept().handshake(PEER_ASN);
    assert_eq!(open.hold_time, 30);
}

#[test]
fn a_peer_removed_and_added_again_starts_afresh() {
    let (peer, speaker, mut first) = established(|_| {});
    speaker.advertise("router", prefix("198.51.100.10/32"), Route::default()).unwrap();
    first.updates_until(|u| !announced(u).is_empty());

    assert!(speaker.remove_peer("router").unwrap());
    assert_eq!(speaker.add_peer(config("router", peer.port())).unwrap(), AddOutcome::Added);
    let cease = Notification { code: 6, subcode: 3, data: Vec::new() };
    assert_eq!(first.next_not_keepalive(), Some(Message::Notification(cease)));
    assert_eq!(first.recv(), None);
    let mut second = peer.accept();
    second.handshake(PEER_ASN);
    wait_until("the new session is up", || speaker.peer("router").is_some_and(|p| p.state == State::Established));
    let status = speaker.peer("router").unwrap();
    assert_eq!(status.prefixes_configured, 0, "the removed peer's routes went with it");
    assert_eq!((status.counters.established, status.counters.notifications_sent), (1, 0), "new counters");
    // The first UPDATE on the new session carries only what was set since.
    speaker.advertise("router", prefix("198.51.100.20/32"), Route::default()).unwrap();
    let updates = second.updates_until(|u| !u.is_empty());
    assert_eq!(announced(&updates), vec![prefix("198.51.100.20/32")]);
}

#[test]
fn stop_returns_with_a_peer_that_never_answers() {
    let silent = TestPeer::new();
    let (_listener, port, _queued) = unanswering_listener();
    let speaker = speaker();
    speaker.add_peer(config("silent", silent.port())).unwrap();
    speaker.add_peer(config("unreachable", port)).unwrap();
    // One connection is up and its OPEN never answered; the other never connects.
    let mut wire = silent.accept();
    wire.expect_open();
    speaker.stop();
    assert!(!speaker.is_running());
    let cease = Notification { code: 6, subcode: 2, data: Vec::new() };
    assert_eq!(wire.next_not_keepalive(), Some(Message::Notification(cease)));
    assert_eq!(wire.recv(), None);
}

#[test]
fn the_hold_timer_runs_while_a_large_table_goes_out() {
    let (peer, speaker, mut wire) = established(|c| c.hold_time = Duration::from_secs(3));
    speaker.set_routes("router", host_routes(50_000)).unwrap();
    // The peer reads everything but says nothing: after 3 s the speaker gives up on it.
    let mut announced = 0;
    let notification = loop {
        match wire.recv() {
            Some(Message::Update(u)) => announced += u.nlri.len(),
            Some(Message::Keepalive) => {}
            Some(Message::Notification(n)) => break n,
            other => panic!("expected UPDATEs then a NOTIFICATION, got {other:?}"),
        }
    };
    assert_eq!((notification.code, notification.subcode), (4, 0), "after {announced} prefixes");
    assert_eq!(wire.recv(), None);
    let down = wait_event(&speaker, "router", EventKind::Down);
    assert_eq!(down.notification, Some((4, 0)));
    peer.accept();
}

#[test]
fn a_table_larger_than_the_write_queue_goes_out_without_waiting_for_a_timer() {
    // 200,000 /32s are about 1 MB of UPDATEs, sixteen times the write queue's high-water mark; nothing else
    // wakes the thread meanwhile (keepalives every 30 s, and the peer says nothing).
    let (_peer, speaker, mut wire) = established(|_| {});
    speaker.set_routes("router", host_routes(200_000)).unwrap();
    let mut count = 0;
    wire.updates_until(|u| {
        count = u.iter().map(|u| u.nlri.len()).sum::<usize>();
        count >= 200_000
    });
    assert_eq!(count, 200_000);
    let status = speaker.peer("router").unwrap();
    assert_eq!(status.counters.keepalives_sent, 1, "only the handshake's: no timer had to fire");
}

#[test]
fn a_next_hop_taken_away_withdraws_the_routes_that_used_it() {
    let hop: Ipv6Addr = "2001:db8::1".parse().unwrap();
    let (peer, speaker, mut wire) = established(|c| c.next_hop_v6 = Some(hop));
    speaker.advertise("router", prefix("2001:db8::10/128"), Route::default()).unwrap();
    let updates = wire.updates_until(|u| !announced(u).is_empty());
    assert_eq!(updates[0].attributes.mp_reach.as_ref().unwrap().next_hops, vec![IpAddr::V6(hop)]);

    // Without the configured next hop there is none (loopback has no global IPv6 address): the peer must not
    // keep forwarding to the old one. The route stays configured, and waits.
    assert_eq!(speaker.add_peer(config("router", peer.port())).unwrap(), AddOutcome::NextHopsChanged);
    speaker.advertise("router", prefix("198.51.100.10/32"), Route::default()).unwrap();
    let updates = wire.updates_until(|u| !announced(u).is_empty());
    let withdrawn: Vec<Prefix> =
        updates.iter().flat_map(|u| u.attributes.mp_unreach.iter().flat_map(|m| m.withdrawn.clone())).collect();
    assert_eq!(withdrawn, vec![prefix("2001:db8::10/128")]);
    assert_eq!(announced(&updates), vec![prefix("198.51.100.10/32")]);
    wait_until("the withdrawal is counted", || speaker.peer("router").unwrap().prefixes_advertised == 1);
    let status = speaker.peer("router").unwrap();
    assert_eq!((status.prefixes_configured, status.prefixes_pending), (2, 1));
    assert!(status.unsendable.unwrap().contains("set next_hop_v6"));
    assert_eq!(status.counters.established, 1, "no reset");

    // Given again, the next hop brings the route back.
    let mut with_hop = config("router", peer.port());
    with_hop.next_hop_v6 = Some(hop);
    assert_eq!(speaker.add_peer(with_hop).unwrap(), AddOutcome::NextHopsChanged);
    let updates = wire.updates_until(|u| announced(u).contains(&prefix("2001:db8::10/128")));
    assert!(updates.iter().all(|u| u.attributes.mp_unreach.is_none()));
}

#[test]
fn a_closed_connection_is_explained_by_when_it_closed() {
    // Closed before answering our OPEN: what a peer that wants a TCP MD5 password (or does not know us) does.
    let (peer, speaker, mut wire) = connected(|_| {});
    wire.expect_open();
    drop(wire);
    let down = wait_event(&speaker, "router", EventKind::Down);
    assert!(down.reason.contains("requires a TCP MD5 password"), "{}", down.reason);
    // Closed after the session was up (a restarted router): no such guess.
    peer.accept().handshake(PEER_ASN);
    wait_event(&speaker, "router", EventKind::Up);
    let down = wait_event(&speaker, "router", EventKind::Down);
    assert_eq!(down.reason, "the peer closed the connection");
}

#[test]
fn the_cease_survives_a_peer_that_reads_slowly_and_still_talks() {
    let (_peer, speaker, mut wire) = established(|_| {});
    // 1,500 prefixes each with its own 320 large communities: an UPDATE of some 3.9 kB each, about 6 MB in
    // all, more than loopback's socket buffers take while the peer does not read.
    let routes: BTreeMap<Prefix, Route> = host_routes(1500)
        .into_keys()
        .enumerate()
        .map(|(i, p)| {
            let communities = (0..320).map(|j| format!("{i}:{j}:0")).collect::<Vec<_>>();
            (p, parse_route(None, &[] as &[&str], &communities).unwrap())
        })
        .collect();
    speaker.set_routes("router", routes).unwrap();
    let mut last = u64::MAX;
    wait_until("the socket is full", || {
        let sent = speaker.peer("router").unwrap().counters.bytes_sent;
        let full = sent == last;
        last = sent;
        std::thread::sleep(Duration::from_millis(200));
        full
    });
    assert!(speaker.peer("router").unwrap().prefixes_pending > 0);

    speaker.remove_peer("router").unwrap();
    // The peer still talks (a KEEPALIVE the speaker, closing, does not read), then reads what was sent.
    wire.send(Message::Keepalive);
    let mut last_message = None;
    while let Some(message) = wire.recv_or_reset() {
        last_message = Some(message);
    }
    let cease = Notification { code: 6, subcode: 3, data: Vec::new() };
    assert_eq!(last_message, Some(Message::Notification(cease)), "the connection ends with the Cease");
}
