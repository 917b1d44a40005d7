//! Properties of the BGP session state machine over any sequence of events and time: it never panics, it is
//! established only after a valid OPEN and a KEEPALIVE, every end of a connection is reported once, and a
//! running session always tries again within its connect retry time.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use metallb_core::bgp::fsm::{Action, Event, PeerAsn, Session, SessionConfig, State};
use metallb_core::bgp::{Afi, Capability, Message, Notification, Open, RouteRefresh, Safi, Update};
use proptest::prelude::*;

const LOCAL_ASN: u32 = 64512;
const PEER_ASN: u32 = 64513;
const ROUTER_ID: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const CONNECT_RETRY: Duration = Duration::from_secs(30);

/// One step of a run: an event, or time passing (then the timers run).
#[derive(Debug, Clone)]
enum Step {
    Event(Event),
    /// The OPEN is one the session must accept.
    ValidOpen(u16),
    /// The OPEN is one the session must refuse.
    BadOpen(Open),
    Wait(Duration),
}

fn open(asn: u32, hold_time: u16, router_id: Ipv4Addr) -> Open {
    Open {
        asn,
        hold_time,
        router_id,
        capabilities: vec![Capability::Multiprotocol(Afi::Ipv4, Safi::Unicast), Capability::FourOctetAs(asn)],
    }
}

fn step() -> impl Strategy<Value = Step> {
    let notification = (1u8..8, 0u8..12).prop_map(|(code, subcode)| Notification { code, subcode, data: vec![] });
    prop_oneof![
        3 => Just(Step::Event(Event::Start)),
        1 => (1u8..10).prop_map(|subcode| Step::Event(Event::Stop { subcode })),
        4 => Just(Step::Event(Event::TcpConnected)),
        1 => Just(Step::Event(Event::TcpFailed("refused".into()))),
        1 => Just(Step::Event(Event::TcpClosed)),
        3 => Just(Step::Event(Event::Received(Message::Keepalive))),
        1 => Just(Step::Event(Event::Received(Message::Update(Update::default())))),
        1 => Just(Step::Event(Event::Received(Message::RouteRefresh(RouteRefresh {
            afi: Afi::Ipv4,
            safi: Safi::Unicast
        })))),
        1 => notification.clone().prop_map(|n| Step::Event(Event::Received(Message::Notification(n)))),
        1 => notification.prop_map(|n| Step::Event(Event::Malformed(n))),
        2 => Just(Step::Event(Event::Sent)),
        1 => Just(Step::Event(Event::PathDown)),
        1 => Just(Step::Event(Event::PathUp)),
        1 => Just(Step::Event(Event::Abandon)),
        3 => prop_oneof![Just(0u16), Just(3), Just(9), Just(90), Just(600)].prop_map(Step::ValidOpen),
        1 => prop_oneof![
            Just(open(64999, 90, Ipv4Addr::new(192, 0, 2, 2))),
            Just(open(PEER_ASN, 1, Ipv4Addr::new(192, 0, 2, 2))),
            Just(open(PEER_ASN, 2, Ipv4Addr::new(192, 0, 2, 2))),
            Just(open(PEER_ASN, 90, Ipv4Addr::UNSPECIFIED)),
        ]
        .prop_map(Step::BadOpen),
        4 => (0u64..300_000).prop_map(|ms| Step::Wait(Duration::from_millis(ms))),
    ]
}

/// Polls a copy of the session from `now` on, with nothing else happening, until it connects.
fn time_to_retry(session: &Session, now: Instant) -> Option<Duration> {
    let mut s = session.clone();
    let deadline = s.next_deadline()?;
    let actions = s.poll(deadline);
    (actions == vec![Action::Connect]).then(|| deadline.saturating_duration_since(now))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn any_sequence_of_events_keeps_the_session_consistent(steps in prop::collection::vec(step(), 0..80)) {
        let start = Instant::now();
        let mut cfg = SessionConfig::new(LOCAL_ASN, PeerAsn::Fixed(PEER_ASN), ROUTER_ID);
        cfg.hold_time = 9;
        cfg.connect_retry = CONNECT_RETRY;
        let mut s = Session::new(cfg, start).unwrap();
        let mut now = start;
        for step in steps {
            let before = s.state();
            let was_running = s.is_running();
            let (event, actions) = match step {
                Step::Event(event) => (Some(event.clone()), s.handle(event, now)),
                Step::ValidOpen(hold) => {
                    let event = Event::Received(Message::Open(open(PEER_ASN, hold, Ipv4Addr::new(192, 0, 2, 2))));
                    (Some(event.clone()), s.handle(event, now))
                }
                Step::BadOpen(open) => {
                    let actions = s.handle(Event::Received(Message::Open(open)), now);
                    prop_assert_ne!(s.state(), State::OpenConfirm, "a bad OPEN was accepted");
                    (None, actions)
                }
                Step::Wait(d) => {
                    now += d;
                    let actions = s.poll(now);
                    prop_assert!(s.next_deadline().is_none_or(|d| d > now), "poll left a deadline due");
                    (None, actions)
                }
            };
            let after = s.state();

            // Established only from OpenConfirm on a KEEPALIVE; OpenConfirm only from OpenSent on a valid OPEN.
            if after == State::Established && before != State::Established {
                prop_assert_eq!(before, State::OpenConfirm);
                prop_assert_eq!(&event, &Some(Event::Received(Message::Keepalive)));
                prop_assert!(matches!(actions.as_slice(), [Action::Up(_)]), "{:?}", actions);
            }
            if after == State::OpenConfirm && before != State::OpenConfirm {
                prop_assert_eq!(before, State::OpenSent);
                prop_assert!(matches!(event, Some(Event::Received(Message::Open(_)))), "{:?}", event);
            }
            prop_assert_eq!(s.negotiated().is_some(), matches!(after, State::OpenConfirm | State::Established));
            prop_assert_eq!(s.established_since().is_some(), after == State::Established);

            // Every end of a connection or attempt is one Down, last in the list.
            let downs = actions.iter().filter(|a| matches!(a, Action::Down(_))).count();
            let went_down = before != State::Idle && after == State::Idle;
            prop_assert_eq!(downs, usize::from(went_down), "{:?} -> {:?}: {:?}", before, after, actions);
            if went_down {
                prop_assert!(matches!(actions.last(), Some(Action::Down(_))));
            }
            // A Connect only when asked to start, or when a running session's retry is due, and never while
            // BFD holds the session down.
            if actions.contains(&Action::Connect) {
                prop_assert!(event == Some(Event::Start) || was_running);
                prop_assert_eq!(after, State::Connect);
                prop_assert!(!s.is_path_down());
            }
            // BFD down, and a graceful restart's close, end a connection without a retry; only PathDown sends
            // a NOTIFICATION (Cease 10), only when there was a connection.
            if event == Some(Event::PathDown) || event == Some(Event::Abandon) {
                prop_assert_eq!(after, State::Idle);
                prop_assert_eq!(s.next_deadline(), None);
                let notifications: Vec<&Action> =
                    actions.iter().filter(|a| matches!(a, Action::Send(Message::Notification(_)))).collect();
                let connected = matches!(before, State::OpenSent | State::OpenConfirm | State::Established);
                let expected = usize::from(connected && event == Some(Event::PathDown));
                prop_assert_eq!(notifications.len(), expected, "{:?}", actions);
            }

            // A running session that is down always has its next attempt scheduled within connect_retry,
            // unless BFD holds it.
            if after == State::Idle && s.is_running() && !s.is_path_down() {
                let retry = time_to_retry(&s, now);
                prop_assert!(retry.is_some_and(|d| d <= CONNECT_RETRY), "no retry in time: {:?}", retry);
            }
            if (!s.is_running() || s.is_path_down()) && after == State::Idle {
                prop_assert_eq!(s.next_deadline(), None);
            }
        }
    }
}
