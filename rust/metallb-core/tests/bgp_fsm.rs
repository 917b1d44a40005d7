//! The BGP session state machine, transition by transition: OPEN checks, negotiation, timers, backoff,
//! unexpected messages, stop and restart.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use metallb_core::bgp::describe_notification;
use metallb_core::bgp::fsm::{
    Action, Down, DownReason, Event, Negotiated, PeerAsn, Session, SessionConfig, SessionConfigError, State,
    OPEN_SENT_HOLD,
};
use metallb_core::bgp::{Afi, Capability, GracefulRestart, Message, Notification, Open, RouteRefresh, Safi, Update};

const LOCAL_ASN: u32 = 64512;
const PEER_ASN: u32 = 64513;
const ROUTER_ID: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const PEER_ID: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 254);
const V4: (Afi, Safi) = (Afi::Ipv4, Safi::Unicast);
const V6: (Afi, Safi) = (Afi::Ipv6, Safi::Unicast);

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn config() -> SessionConfig {
    SessionConfig::new(LOCAL_ASN, PeerAsn::Fixed(PEER_ASN), ROUTER_ID)
}

fn peer_open(asn: u32, hold_time: u16) -> Open {
    Open {
        asn,
        hold_time,
        router_id: PEER_ID,
        capabilities: vec![
            Capability::Multiprotocol(Afi::Ipv4, Safi::Unicast),
            Capability::Multiprotocol(Afi::Ipv6, Safi::Unicast),
            Capability::RouteRefresh,
            Capability::FourOctetAs(asn),
        ],
    }
}

fn notification(code: u8, subcode: u8) -> Notification {
    Notification { code, subcode, data: Vec::new() }
}

/// A started session with its TCP connection up (OpenSent).
fn open_sent(cfg: SessionConfig, now: Instant) -> Session {
    let mut s = Session::new(cfg, now).unwrap();
    assert_eq!(s.handle(Event::Start, now), vec![Action::Connect]);
    let actions = s.handle(Event::TcpConnected, now);
    assert!(matches!(actions.as_slice(), [Action::Send(Message::Open(_))]), "{actions:?}");
    s
}

fn open_confirm(cfg: SessionConfig, open: Open, now: Instant) -> Session {
    let mut s = open_sent(cfg, now);
    let actions = s.handle(Event::Received(Message::Open(open)), now);
    assert_eq!(actions, vec![Action::Send(Message::Keepalive)]);
    s
}

fn established(cfg: SessionConfig, open: Open, now: Instant) -> (Session, Negotiated) {
    let mut s = open_confirm(cfg, open, now);
    let actions = s.handle(Event::Received(Message::Keepalive), now);
    match actions.as_slice() {
        [Action::Up(n)] => (s, n.clone()),
        other => panic!("expected Up, got {other:?}"),
    }
}

/// The `Down` in a list of actions, and the actions before it.
fn down_of(actions: &[Action]) -> (&[Action], &Down) {
    match actions.split_last() {
        Some((Action::Down(d), before)) => (before, d),
        _ => panic!("expected the actions to end with Down: {actions:?}"),
    }
}

#[test]
fn invalid_configurations_are_refused_with_the_field_named() {
    type Edit = fn(&mut SessionConfig);
    let cases: Vec<(Edit, SessionConfigError)> = vec![
        (|c| c.local_asn = 0, SessionConfigError::ZeroLocalAsn),
        (|c| c.peer_asn = PeerAsn::Fixed(0), SessionConfigError::ZeroPeerAsn),
        (|c| c.router_id = Ipv4Addr::UNSPECIFIED, SessionConfigError::ZeroRouterId),
        (|c| c.hold_time = 1, SessionConfigError::HoldTime(1)),
        (|c| c.hold_time = 2, SessionConfigError::HoldTime(2)),
        (|c| c.keepalive_time = Some(0), SessionConfigError::KeepaliveTime { keepalive: 0, hold: 90 }),
        (|c| c.keepalive_time = Some(91), SessionConfigError::KeepaliveTime { keepalive: 91, hold: 90 }),
        (|c| c.connect_retry = Duration::ZERO, SessionConfigError::ConnectRetry(Duration::ZERO)),
        (|c| c.connect_retry = secs(65536), SessionConfigError::ConnectRetry(secs(65536))),
        (|c| c.families.clear(), SessionConfigError::NoFamilies),
    ];
    for (edit, expected) in cases {
        let mut cfg = config();
        edit(&mut cfg);
        assert_eq!(Session::new(cfg, Instant::now()).err(), Some(expected));
    }
    let mut cfg = config();
    cfg.hold_time = 0;
    cfg.keepalive_time = Some(30);
    assert!(Session::new(cfg, Instant::now()).is_ok(), "hold time 0 ignores the keepalive time");
    let mut cfg = config();
    cfg.hold_time = 3;
    cfg.keepalive_time = Some(3);
    assert!(Session::new(cfg, Instant::now()).is_ok());
}

#[test]
fn idle_until_started_then_connects_at_once() {
    let now = Instant::now();
    let mut s = Session::new(config(), now).unwrap();
    assert_eq!(s.state(), State::Idle);
    assert_eq!(s.next_deadline(), None);
    assert_eq!(s.poll(now + secs(1000)), vec![]);
    assert_eq!(s.handle(Event::Start, now), vec![Action::Connect]);
    assert_eq!(s.state(), State::Connect);
    assert_eq!(s.handle(Event::Start, now), vec![], "a second Start changes nothing");
}

#[test]
fn the_open_we_send_offers_our_families_route_refresh_4_octet_as_and_graceful_restart() {
    let now = Instant::now();
    let gr =
        GracefulRestart { restarting: false, restart_time: 120, families: vec![(Afi::Ipv4, Safi::Unicast, false)] };
    let mut cfg = config();
    cfg.local_asn = 4_200_000_000;
    cfg.hold_time = 30;
    cfg.families = vec![V6, V6];
    cfg.graceful_restart = Some(gr.clone());
    let mut s = Session::new(cfg, now).unwrap();
    s.handle(Event::Start, now);
    let actions = s.handle(Event::TcpConnected, now);
    let expected = Open {
        asn: 4_200_000_000,
        hold_time: 30,
        router_id: ROUTER_ID,
        capabilities: vec![
            Capability::Multiprotocol(Afi::Ipv6, Safi::Unicast),
            Capability::RouteRefresh,
            Capability::FourOctetAs(4_200_000_000),
            Capability::GracefulRestart(gr),
        ],
    };
    assert_eq!(actions, vec![Action::Send(Message::Open(expected))]);
    assert_eq!(s.state(), State::OpenSent);
    assert_eq!(s.next_deadline(), Some(now + OPEN_SENT_HOLD), "OpenSent waits 240 s for the peer's OPEN");
    s.handle(Event::Received(Message::Open(peer_open(PEER_ASN, 90))), now);
    assert!(s.negotiated().unwrap().end_of_rib, "the capability promises End-of-RIB markers (RFC 4724 3)");
}

#[test]
fn a_valid_open_then_keepalive_establishes_the_session() {
    let now = Instant::now();
    let mut s = open_confirm(config(), peer_open(PEER_ASN, 180), now);
    assert_eq!(s.state(), State::OpenConfirm);
    assert_eq!(s.established_since(), None);
    let expected = Negotiated {
        peer_asn: PEER_ASN,
        peer_router_id: PEER_ID,
        hold_time: 90,
        keepalive: 30,
        four_octet_as: true,
        families: vec![V4, V6],
        route_refresh: true,
        peer_graceful_restart: None,
        ibgp: false,
        end_of_rib: false,
    };
    assert_eq!(s.negotiated(), Some(&expected));
    let later = now + secs(2);
    assert_eq!(s.handle(Event::Received(Message::Keepalive), later), vec![Action::Up(expected)]);
    assert_eq!(s.state(), State::Established);
    assert_eq!(s.established_since(), Some(later));
}

#[test]
fn open_errors_are_refused_with_the_rfc_subcode() {
    let now = Instant::now();
    let with_id = |mut open: Open, id: Ipv4Addr| {
        open.router_id = id;
        open
    };
    let only_v6 = |mut open: Open| {
        open.capabilities.retain(|c| !matches!(c, Capability::Multiprotocol(..)));
        open.capabilities.push(Capability::Multiprotocol(Afi::Ipv6, Safi::Unicast));
        open
    };
    let v4_only = SessionConfig { families: vec![V4], ..config() };
    let cases: Vec<(&str, SessionConfig, Open, u8)> = vec![
        ("fixed peer AS differs", config(), peer_open(64999, 90), 2),
        ("peer AS 0", SessionConfig { peer_asn: PeerAsn::External, ..config() }, peer_open(0, 90), 2),
        (
            "internal, peer AS differs",
            SessionConfig { peer_asn: PeerAsn::Internal, ..config() },
            peer_open(PEER_ASN, 90),
            2,
        ),
        (
            "external, peer AS ours",
            SessionConfig { peer_asn: PeerAsn::External, ..config() },
            peer_open(LOCAL_ASN, 90),
            2,
        ),
        ("hold time 1", config(), peer_open(PEER_ASN, 1), 6),
        ("hold time 2", config(), peer_open(PEER_ASN, 2), 6),
        ("identifier 0.0.0.0", config(), with_id(peer_open(PEER_ASN, 90), Ipv4Addr::UNSPECIFIED), 3),
        (
            "iBGP identifier equal to ours",
            SessionConfig { peer_asn: PeerAsn::Fixed(LOCAL_ASN), ..config() },
            with_id(peer_open(LOCAL_ASN, 90), ROUTER_ID),
            3,
        ),
        ("no common family", v4_only, only_v6(peer_open(PEER_ASN, 90)), 7),
    ];
    for (name, cfg, open, subcode) in cases {
        let mut s = open_sent(cfg, now);
        let actions = s.handle(Event::Received(Message::Open(open)), now);
        let (before, down) = down_of(&actions);
        assert_eq!(before, [Action::Send(Message::Notification(notification(2, subcode))), Action::Close], "{name}");
        assert!(
            matches!(&down.reason, DownReason::NotificationSent { notification: n, .. } if n.subcode == subcode),
            "{name}: {down:?}"
        );
        assert_eq!(down.from, State::OpenSent, "{name}");
        assert_eq!(s.state(), State::Idle, "{name}");
        assert_eq!(s.negotiated(), None, "{name}");
    }
}

#[test]
fn the_refusal_says_what_was_wrong() {
    let now = Instant::now();
    let mut s = open_sent(config(), now);
    let actions = s.handle(Event::Received(Message::Open(peer_open(64999, 90))), now);
    let text = down_of(&actions).1.reason.to_string();
    assert_eq!(text, "notification sent: OPEN message error / bad peer AS (2/2) (peer AS 64999, expected 64513)");
}

#[test]
fn accepted_opens() {
    let now = Instant::now();
    let same_id = |mut open: Open| {
        open.router_id = ROUTER_ID;
        open
    };
    let cases: Vec<(&str, SessionConfig, Open, u32, bool)> = vec![
        (
            "internal",
            SessionConfig { peer_asn: PeerAsn::Internal, ..config() },
            peer_open(LOCAL_ASN, 90),
            LOCAL_ASN,
            true,
        ),
        ("external", SessionConfig { peer_asn: PeerAsn::External, ..config() }, peer_open(65100, 90), 65100, false),
        ("eBGP may share our identifier (RFC 6286)", config(), same_id(peer_open(PEER_ASN, 90)), PEER_ASN, false),
    ];
    for (name, cfg, open, asn, ibgp) in cases {
        let s = open_confirm(cfg, open, now);
        let n = s.negotiated().unwrap();
        assert_eq!((n.peer_asn, n.ibgp), (asn, ibgp), "{name}");
    }
}

#[test]
fn four_octet_asn_comes_from_the_capability() {
    let now = Instant::now();
    let big = 4_200_000_001;
    let mut open = peer_open(23456, 90);
    open.capabilities.retain(|c| !matches!(c, Capability::FourOctetAs(_)));
    open.capabilities.push(Capability::FourOctetAs(big));
    let s = open_confirm(SessionConfig { peer_asn: PeerAsn::Fixed(big), ..config() }, open, now);
    assert_eq!(s.negotiated().map(|n| (n.peer_asn, n.four_octet_as)), Some((big, true)));

    let mut open = peer_open(PEER_ASN, 90);
    open.capabilities.retain(|c| !matches!(c, Capability::FourOctetAs(_)));
    let s = open_confirm(config(), open, now);
    assert_eq!(s.negotiated().map(|n| (n.peer_asn, n.four_octet_as)), Some((PEER_ASN, false)));

    // A 2-octet-only peer with a 4-octet ASN can only say AS_TRANS: that is not the peer we expect.
    let mut open = peer_open(23456, 90);
    open.capabilities.retain(|c| !matches!(c, Capability::FourOctetAs(_)));
    let mut s = open_sent(SessionConfig { peer_asn: PeerAsn::Fixed(big), ..config() }, now);
    let actions = s.handle(Event::Received(Message::Open(open)), now);
    assert_eq!(actions[0], Action::Send(Message::Notification(notification(2, 2))));
}

#[test]
fn hold_time_is_the_smaller_and_keepalive_ours_or_a_third() {
    let now = Instant::now();
    // (our hold, our keepalive, peer hold) -> (hold, keepalive)
    let cases = [
        (90, None, 180, (90, 30)),
        (90, None, 9, (9, 3)),
        (90, None, 0, (0, 0)),
        (0, None, 90, (0, 0)),
        (0, Some(10), 90, (0, 0)),
        (90, Some(5), 9, (9, 5)),
        (90, Some(30), 9, (9, 3)),
        (90, Some(10), 90, (90, 10)),
        (3, None, 3, (3, 1)),
        (4, None, 90, (4, 1)),
        (90, Some(90), 90, (90, 30)),
    ];
    for (ours, keepalive, theirs, expected) in cases {
        let cfg = SessionConfig { hold_time: ours, keepalive_time: keepalive, ..config() };
        let s = open_confirm(cfg, peer_open(PEER_ASN, theirs), now);
        let n = s.negotiated().unwrap();
        assert_eq!((n.hold_time, n.keepalive), expected, "ours {ours} keepalive {keepalive:?} theirs {theirs}");
    }
}

#[test]
fn families_are_the_common_ones_and_no_multiprotocol_means_ipv4_unicast() {
    let now = Instant::now();
    let with_families = |families: &[(Afi, Safi)]| {
        let mut open = peer_open(PEER_ASN, 90);
        open.capabilities.retain(|c| !matches!(c, Capability::Multiprotocol(..)));
        open.capabilities.extend(families.iter().map(|&(a, s)| Capability::Multiprotocol(a, s)));
        open
    };
    // (ours, the peer's, agreed)
    type Families = Vec<(Afi, Safi)>;
    let cases: Vec<(Families, Families, Families)> = vec![
        (vec![V4, V6], vec![], vec![V4]),
        (vec![V4, V6], vec![V6], vec![V6]),
        (vec![V4, V6], vec![V6, V4], vec![V4, V6]),
        (vec![V4], vec![V4, V6], vec![V4]),
        (vec![V6], vec![V4, V6], vec![V6]),
    ];
    for (ours, theirs, expected) in cases {
        let cfg = SessionConfig { families: ours.clone(), ..config() };
        let s = open_confirm(cfg, with_families(&theirs), now);
        assert_eq!(s.negotiated().unwrap().families, expected, "ours {ours:?} theirs {theirs:?}");
    }
}

#[test]
fn unexpected_messages_are_fsm_errors_of_their_state() {
    let now = Instant::now();
    let update = Message::Update(Update::default());
    let refresh = Message::RouteRefresh(RouteRefresh { afi: Afi::Ipv4, safi: Safi::Unicast });
    let open = Message::Open(peer_open(PEER_ASN, 90));
    let cases: Vec<(State, Message, u8)> = vec![
        (State::OpenSent, Message::Keepalive, 1),
        (State::OpenSent, update.clone(), 1),
        (State::OpenSent, refresh.clone(), 1),
        (State::OpenConfirm, open.clone(), 2),
        (State::OpenConfirm, update, 2),
        (State::OpenConfirm, refresh, 2),
        (State::Established, open, 3),
    ];
    for (state, message, subcode) in cases {
        let mut s = match state {
            State::OpenSent => open_sent(config(), now),
            State::OpenConfirm => open_confirm(config(), peer_open(PEER_ASN, 90), now),
            _ => established(config(), peer_open(PEER_ASN, 90), now).0,
        };
        let actions = s.handle(Event::Received(message.clone()), now);
        let (before, down) = down_of(&actions);
        assert_eq!(before, [Action::Send(Message::Notification(notification(5, subcode))), Action::Close]);
        assert_eq!(down.from, state, "{message:?}");
        assert_eq!(s.state(), State::Idle);
    }
}

#[test]
fn a_notification_received_closes_and_names_code_and_subcode() {
    let now = Instant::now();
    for state in [State::OpenSent, State::OpenConfirm, State::Established] {
        let mut s = match state {
            State::OpenSent => open_sent(config(), now),
            State::OpenConfirm => open_confirm(config(), peer_open(PEER_ASN, 90), now),
            _ => established(config(), peer_open(PEER_ASN, 90), now).0,
        };
        let actions = s.handle(Event::Received(Message::Notification(notification(2, 2))), now);
        let (before, down) = down_of(&actions);
        assert_eq!(before, [Action::Close], "never a NOTIFICATION in reply to one");
        assert_eq!(down.reason, DownReason::NotificationReceived(notification(2, 2)));
        assert_eq!(down.from, state);
        assert_eq!(down.reason.to_string(), "notification received: OPEN message error / bad peer AS (2/2)");
    }
}

#[test]
fn a_malformed_message_is_answered_with_the_codecs_notification() {
    let now = Instant::now();
    let mut s = open_confirm(config(), peer_open(PEER_ASN, 90), now);
    let bad = Notification { code: 1, subcode: 2, data: vec![0, 5] };
    let actions = s.handle(Event::Malformed(bad.clone()), now);
    let (before, down) = down_of(&actions);
    assert_eq!(before, [Action::Send(Message::Notification(bad.clone())), Action::Close]);
    assert!(matches!(&down.reason, DownReason::NotificationSent { notification, .. } if *notification == bad));
}

#[test]
fn hold_timer_restarts_on_every_message_received_and_expiry_sends_4_0() {
    let now = Instant::now();
    let (mut s, n) = established(config(), peer_open(PEER_ASN, 9), now);
    assert_eq!((n.hold_time, n.keepalive), (9, 3));
    let keepalive = vec![Action::Send(Message::Keepalive)];
    assert_eq!(s.poll(now + secs(3)), keepalive);
    // An UPDATE is ignored, but it is a sign of life: the hold timer now ends at +14.
    assert_eq!(s.handle(Event::Received(Message::Update(Update::default())), now + secs(5)), vec![]);
    assert_eq!(s.poll(now + secs(6)), keepalive);
    // And a KEEPALIVE at +8 moves it to +17.
    assert_eq!(s.handle(Event::Received(Message::Keepalive), now + secs(8)), vec![]);
    for t in [9, 12, 15] {
        assert_eq!(s.poll(now + secs(t)), keepalive, "at +{t}");
    }
    assert_eq!(s.next_deadline(), Some(now + secs(17)));
    assert_eq!(s.state(), State::Established);
    assert_eq!(s.poll(now + secs(17) - Duration::from_millis(1)), vec![]);
    let actions = s.poll(now + secs(17));
    let (before, down) = down_of(&actions);
    assert_eq!(before, [Action::Send(Message::Notification(notification(4, 0))), Action::Close]);
    assert_eq!(down.reason, DownReason::HoldTimerExpired);
    assert_eq!(down.established_for, Some(secs(17)));
}

#[test]
fn the_keepalive_timer_restarts_whenever_anything_is_sent() {
    let now = Instant::now();
    let (mut s, _) = established(config(), peer_open(PEER_ASN, 9), now);
    // The KEEPALIVE sent on entering OpenConfirm set the timer.
    assert_eq!(s.next_deadline(), Some(now + secs(3)));
    // UPDATEs went out at +2: nothing to send until +5.
    s.handle(Event::Sent, now + secs(2));
    assert_eq!(s.poll(now + secs(3)), vec![]);
    assert_eq!(s.next_deadline(), Some(now + secs(5)));
    assert_eq!(s.poll(now + secs(5)), vec![Action::Send(Message::Keepalive)]);
    assert_eq!(s.next_deadline(), Some(now + secs(8)));
}

#[test]
fn hold_time_zero_means_no_timers_at_all() {
    let now = Instant::now();
    let (mut s, n) = established(config(), peer_open(PEER_ASN, 0), now);
    assert_eq!((n.hold_time, n.keepalive), (0, 0));
    assert_eq!(s.next_deadline(), None);
    assert_eq!(s.poll(now + secs(100_000)), vec![]);
    assert_eq!(s.state(), State::Established);
}

#[test]
fn open_sent_gives_up_after_240_seconds_without_an_open() {
    let now = Instant::now();
    let mut s = open_sent(config(), now);
    assert_eq!(s.poll(now + OPEN_SENT_HOLD - Duration::from_millis(1)), vec![]);
    let actions = s.poll(now + OPEN_SENT_HOLD);
    let (before, down) = down_of(&actions);
    assert_eq!(before, [Action::Send(Message::Notification(notification(4, 0))), Action::Close]);
    assert_eq!((down.from, &down.reason), (State::OpenSent, &DownReason::HoldTimerExpired));
}

#[test]
fn a_connection_attempt_is_abandoned_after_connect_retry() {
    let now = Instant::now();
    let cfg = SessionConfig { connect_retry: secs(10), ..config() };
    let mut s = Session::new(cfg, now).unwrap();
    s.handle(Event::Start, now);
    assert_eq!(s.next_deadline(), Some(now + secs(10)));
    let actions = s.poll(now + secs(10));
    let (before, down) = down_of(&actions);
    assert_eq!(before, [Action::Close]);
    assert_eq!(down.reason, DownReason::ConnectTimedOut(secs(10)));
    assert_eq!(s.state(), State::Idle);
}

#[test]
fn tcp_failures_and_closes_go_down_without_a_close_of_our_own() {
    let now = Instant::now();
    let mut s = Session::new(config(), now).unwrap();
    s.handle(Event::Start, now);
    let actions = s.handle(Event::TcpFailed("connection refused".into()), now);
    let (before, down) = down_of(&actions);
    assert!(before.is_empty());
    assert_eq!(down.reason, DownReason::ConnectFailed("connection refused".into()));
    assert_eq!(down.reason.to_string(), "connect failed: connection refused");

    let (mut s, _) = established(config(), peer_open(PEER_ASN, 90), now);
    let actions = s.handle(Event::TcpClosed, now + secs(1));
    assert_eq!(down_of(&actions).0, []);
    assert_eq!(down_of(&actions).1.reason, DownReason::TcpClosed);

    let (mut s, _) = established(config(), peer_open(PEER_ASN, 90), now);
    let actions = s.handle(Event::TcpFailed("connection reset by peer".into()), now);
    assert_eq!(down_of(&actions).1.reason, DownReason::TcpError("connection reset by peer".into()));
}

/// Fails `count` connection attempts in a row, returning each retry delay.
fn fail_attempts(s: &mut Session, mut now: Instant, count: usize) -> Vec<Duration> {
    let mut delays = Vec::new();
    for _ in 0..count {
        let actions = s.handle(Event::TcpFailed("connection refused".into()), now);
        let delay = down_of(&actions).1.retry_in.expect("a running session retries");
        assert_eq!(s.next_deadline(), Some(now + delay));
        assert_eq!(s.poll(now + delay - Duration::from_millis(1)), vec![]);
        now += delay;
        assert_eq!(s.poll(now), vec![Action::Connect]);
        delays.push(delay);
    }
    delays
}

#[test]
fn retries_back_off_from_one_second_doubling_up_to_connect_retry_with_jitter() {
    let now = Instant::now();
    let cfg = SessionConfig { connect_retry: secs(20), ..config() };
    let mut s = Session::new(cfg.clone(), now).unwrap();
    s.handle(Event::Start, now);
    let delays = fail_attempts(&mut s, now, 8);
    let gaps = [1, 2, 4, 8, 16, 20, 20, 20];
    for (delay, gap) in delays.iter().zip(gaps) {
        let gap = secs(gap);
        assert!(*delay <= gap && *delay >= gap * 3 / 4, "delay {delay:?} for gap {gap:?}");
    }
    // Seeded: the same seed gives the same delays, another seed others.
    let mut again = Session::new(cfg.clone(), now).unwrap();
    again.handle(Event::Start, now);
    assert_eq!(fail_attempts(&mut again, now, 8), delays);
    let mut other = Session::new(SessionConfig { jitter_seed: 7, ..cfg }, now).unwrap();
    other.handle(Event::Start, now);
    assert_ne!(fail_attempts(&mut other, now, 8), delays);
}

#[test]
fn connect_retry_below_one_second_caps_even_the_first_retry() {
    let now = Instant::now();
    let cfg = SessionConfig { connect_retry: Duration::from_millis(200), ..config() };
    let mut s = Session::new(cfg, now).unwrap();
    s.handle(Event::Start, now);
    for delay in fail_attempts(&mut s, now, 4) {
        assert!(delay <= Duration::from_millis(200) && delay >= Duration::from_millis(150), "{delay:?}");
    }
}

#[test]
fn backoff_starts_over_only_after_a_session_that_outlived_its_hold_time() {
    let now = Instant::now();
    let cfg = SessionConfig { connect_retry: secs(60), ..config() };
    // (how long the session stays established, the retry gap expected after it drops)
    for (lasted, gap) in [(secs(10), secs(16)), (secs(9), secs(16)), (secs(10) + Duration::from_millis(1), secs(1))] {
        let mut s = Session::new(cfg.clone(), now).unwrap();
        s.handle(Event::Start, now);
        let mut t = now;
        for d in fail_attempts(&mut s, t, 4) {
            t += d;
        }
        s.handle(Event::TcpConnected, t);
        s.handle(Event::Received(Message::Open(peer_open(PEER_ASN, 10))), t);
        s.handle(Event::Received(Message::Keepalive), t);
        assert_eq!(s.state(), State::Established);
        let actions = s.handle(Event::TcpClosed, t + lasted);
        let down = down_of(&actions).1;
        assert_eq!(down.established_for, Some(lasted));
        let delay = down.retry_in.unwrap();
        assert!(delay <= gap && delay >= gap * 3 / 4, "lasted {lasted:?}: delay {delay:?}, gap {gap:?}");
    }
}

#[test]
fn stop_sends_cease_and_stays_down_until_started_again() {
    let now = Instant::now();
    let (mut s, _) = established(config(), peer_open(PEER_ASN, 90), now);
    let actions = s.handle(Event::Stop { subcode: 3 }, now + secs(1));
    let (before, down) = down_of(&actions);
    assert_eq!(before, [Action::Send(Message::Notification(notification(6, 3))), Action::Close]);
    assert_eq!(down.reason, DownReason::Stopped { subcode: 3 });
    assert_eq!(down.retry_in, None);
    assert_eq!(down.reason.to_string(), "stopped: cease / peer de-configured (6/3)");
    assert_eq!((s.state(), s.is_running(), s.next_deadline()), (State::Idle, false, None));
    assert_eq!(s.poll(now + secs(10_000)), vec![]);
    assert_eq!(s.handle(Event::Start, now + secs(2)), vec![Action::Connect]);
}

#[test]
fn stop_while_connecting_abandons_the_attempt_and_stop_while_waiting_cancels_the_retry() {
    let now = Instant::now();
    let mut s = Session::new(config(), now).unwrap();
    s.handle(Event::Start, now);
    let actions = s.handle(Event::Stop { subcode: 2 }, now);
    assert_eq!(down_of(&actions).0, [Action::Close]);
    assert_eq!(s.next_deadline(), None);

    let mut s = Session::new(config(), now).unwrap();
    s.handle(Event::Start, now);
    s.handle(Event::TcpFailed("no route to host".into()), now);
    assert!(s.next_deadline().is_some());
    assert_eq!(s.handle(Event::Stop { subcode: 2 }, now), vec![], "nothing to close, nothing went down");
    assert_eq!((s.state(), s.next_deadline()), (State::Idle, None));
}

#[test]
fn route_refresh_asks_for_our_routes_of_an_agreed_family() {
    let now = Instant::now();
    let (mut s, _) = established(SessionConfig { families: vec![V4], ..config() }, peer_open(PEER_ASN, 90), now);
    let v4 = RouteRefresh { afi: Afi::Ipv4, safi: Safi::Unicast };
    let v6 = RouteRefresh { afi: Afi::Ipv6, safi: Safi::Unicast };
    assert_eq!(
        s.handle(Event::Received(Message::RouteRefresh(v4)), now),
        vec![Action::RefreshRequested(Afi::Ipv4, Safi::Unicast)]
    );
    assert_eq!(s.handle(Event::Received(Message::RouteRefresh(v6)), now), vec![], "RFC 2918: ignored");
    assert_eq!(s.state(), State::Established);
}

#[test]
fn events_of_no_connection_are_ignored() {
    let now = Instant::now();
    let mut s = Session::new(config(), now).unwrap();
    for event in [
        Event::TcpConnected,
        Event::TcpClosed,
        Event::TcpFailed("late".into()),
        Event::Sent,
        Event::Received(Message::Keepalive),
        Event::Malformed(notification(1, 1)),
    ] {
        assert_eq!(s.handle(event.clone(), now), vec![], "{event:?} in Idle");
    }
    s.handle(Event::Start, now);
    for event in [Event::Received(Message::Open(peer_open(PEER_ASN, 90))), Event::Sent] {
        assert_eq!(s.handle(event.clone(), now), vec![], "{event:?} in Connect");
    }
    let (mut s, _) = established(config(), peer_open(PEER_ASN, 90), now);
    assert_eq!(s.handle(Event::TcpConnected, now), vec![], "a second connection is not ours to take");
    assert_eq!(s.handle(Event::Start, now), vec![]);
    assert_eq!(s.state(), State::Established);
}

#[test]
fn notification_names() {
    let cases = [
        (1, 1, "message header error / connection not synchronized (1/1)"),
        (2, 1, "OPEN message error / unsupported version number (2/1)"),
        (2, 6, "OPEN message error / unacceptable hold time (2/6)"),
        (3, 11, "UPDATE message error / malformed AS_PATH (3/11)"),
        (4, 0, "hold timer expired / unspecific (4/0)"),
        (5, 2, "finite state machine error / unexpected message in OpenConfirm (5/2)"),
        (6, 2, "cease / administrative shutdown (6/2)"),
        (6, 9, "cease / hard reset (6/9)"),
        (2, 11, "OPEN message error / role mismatch (2/11)"),
        (7, 1, "ROUTE-REFRESH message error / invalid message length (7/1)"),
        (7, 2, "ROUTE-REFRESH message error / unknown subcode (7/2)"),
        (6, 99, "cease / unknown subcode (6/99)"),
        (42, 1, "unknown error code / unknown subcode (42/1)"),
    ];
    for (code, subcode, text) in cases {
        assert_eq!(describe_notification(code, subcode), text);
    }
}

#[test]
fn bfd_down_ends_an_established_session_with_cease_10_and_holds_it_until_bfd_is_up() {
    let t0 = Instant::now();
    let (mut s, _) = established(config(), peer_open(PEER_ASN, 90), t0);
    let actions = s.handle(Event::PathDown, t0 + secs(5));
    let (before, down) = down_of(&actions);
    let cease_bfd_down = notification(6, 10);
    assert_eq!(before, &[Action::Send(Message::Notification(cease_bfd_down)), Action::Close]);
    assert_eq!(down.reason, DownReason::PathDown);
    assert_eq!(down.retry_in, None, "no retry while BFD says the path is down");
    assert!(s.is_path_down());
    assert_eq!(describe_notification(6, 10), "cease / BFD down (6/10)");
    // No timer is left: nothing happens however long BFD stays down.
    assert_eq!(s.next_deadline(), None);
    assert_eq!(s.poll(t0 + secs(3600)), vec![]);
    // A second PathDown changes nothing; PathUp connects at once.
    assert_eq!(s.handle(Event::PathDown, t0 + secs(3601)), vec![]);
    assert_eq!(s.handle(Event::PathUp, t0 + secs(3602)), vec![Action::Connect]);
    assert_eq!(s.state(), State::Connect);
    assert!(!s.is_path_down());
    // PathUp without a PathDown before it does nothing.
    assert_eq!(s.handle(Event::PathUp, t0 + secs(3603)), vec![]);
}

#[test]
fn bfd_down_abandons_a_connection_attempt_and_a_failure_schedules_no_retry() {
    let t0 = Instant::now();
    let mut s = Session::new(config(), t0).unwrap();
    assert_eq!(s.handle(Event::Start, t0), vec![Action::Connect]);
    let actions = s.handle(Event::PathDown, t0);
    let (before, down) = down_of(&actions);
    assert_eq!(before, &[Action::Close]);
    assert_eq!((down.reason.clone(), down.retry_in), (DownReason::PathDown, None));
    // While held, Stop then Start does not connect either; PathUp does.
    s.handle(Event::Stop { subcode: 2 }, t0);
    assert_eq!(s.handle(Event::Start, t0), vec![]);
    assert_eq!(s.handle(Event::PathUp, t0), vec![Action::Connect]);
    // Held in Idle before the first start: Start waits for PathUp.
    let mut idle = Session::new(config(), t0).unwrap();
    assert_eq!(idle.handle(Event::PathDown, t0), vec![]);
    assert_eq!(idle.handle(Event::Start, t0), vec![]);
    assert_eq!(idle.handle(Event::PathUp, t0), vec![Action::Connect]);
}

#[test]
fn bfd_up_on_a_stopped_session_does_not_connect() {
    let t0 = Instant::now();
    let (mut s, _) = established(config(), peer_open(PEER_ASN, 90), t0);
    s.handle(Event::PathDown, t0);
    s.handle(Event::Stop { subcode: 2 }, t0);
    assert_eq!(s.handle(Event::PathUp, t0), vec![]);
    assert_eq!(s.state(), State::Idle);
}

#[test]
fn abandon_closes_without_a_notification_and_stops_reconnecting() {
    let t0 = Instant::now();
    let (mut s, _) = established(config(), peer_open(PEER_ASN, 90), t0);
    let actions = s.handle(Event::Abandon, t0 + secs(1));
    let (before, down) = down_of(&actions);
    assert_eq!(before, &[Action::Close], "a graceful restart sends no NOTIFICATION");
    assert_eq!((down.reason.clone(), down.retry_in), (DownReason::Abandoned, None));
    assert!(!s.is_running());
    assert_eq!(s.next_deadline(), None);
    // In Idle there is nothing to close.
    let mut idle = Session::new(config(), t0).unwrap();
    assert_eq!(idle.handle(Event::Abandon, t0), vec![]);
    assert!(down.reason.to_string().contains("graceful restart"), "{}", down.reason);
}
