//! What callers read about each session (a snapshot the thread replaces after every wake-up) and the events
//! it reports (a queue callers wait on).

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use metallb_core::bfd::packet::State as BfdState;
use metallb_core::bgp::fsm::{Down, DownReason, Negotiated, State};
use metallb_core::bgp::{code, describe_notification};
use metallb_core::bgp::{Message, Notification};

use crate::bfd::{BfdChange, BfdStatus};
use crate::nexthop::NextHops;

/// Messages and prefixes, counted since the peer was added (they survive session resets).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    pub opens_sent: u64,
    pub opens_received: u64,
    pub updates_sent: u64,
    pub updates_received: u64,
    pub keepalives_sent: u64,
    pub keepalives_received: u64,
    pub notifications_sent: u64,
    pub notifications_received: u64,
    pub route_refresh_sent: u64,
    pub route_refresh_received: u64,
    /// Prefixes announced in UPDATEs (each announcement of each prefix).
    pub prefixes_announced: u64,
    /// Prefixes withdrawn in UPDATEs.
    pub prefixes_withdrawn: u64,
    /// TCP connection attempts, and those that failed or timed out.
    pub connect_attempts: u64,
    pub connect_failures: u64,
    /// Times the session reached Established.
    pub established: u64,

    pub bytes_sent: u64,
    pub bytes_received: u64,
}

impl Counters {
    /// Every counter with its name, in a fixed order (what the Python binding exposes as a dict).
    pub fn named(&self) -> [(&'static str, u64); 17] {
        [
            ("opens_sent", self.opens_sent),
            ("opens_received", self.opens_received),
            ("updates_sent", self.updates_sent),
            ("updates_received", self.updates_received),
            ("keepalives_sent", self.keepalives_sent),
            ("keepalives_received", self.keepalives_received),
            ("notifications_sent", self.notifications_sent),
            ("notifications_received", self.notifications_received),
            ("route_refresh_sent", self.route_refresh_sent),
            ("route_refresh_received", self.route_refresh_received),
            ("prefixes_announced", self.prefixes_announced),
            ("prefixes_withdrawn", self.prefixes_withdrawn),
            ("connect_attempts", self.connect_attempts),
            ("connect_failures", self.connect_failures),
            ("established", self.established),
            ("bytes_sent", self.bytes_sent),
            ("bytes_received", self.bytes_received),
        ]
    }

    pub(crate) fn count_sent(&mut self, message: &Message) {
        match message {
            Message::Open(_) => self.opens_sent += 1,
            Message::Update(update) => {
                self.updates_sent += 1;
                let (announced, withdrawn) = prefix_counts(update);
                self.prefixes_announced += announced;
                self.prefixes_withdrawn += withdrawn;
            }
            Message::Notification(_) => self.notifications_sent += 1,
            Message::Keepalive => self.keepalives_sent += 1,
            Message::RouteRefresh(_) => self.route_refresh_sent += 1,
        }
    }

    pub(crate) fn count_received(&mut self, message: &Message) {
        match message {
            Message::Open(_) => self.opens_received += 1,
            Message::Update(_) => self.updates_received += 1,
            Message::Notification(_) => self.notifications_received += 1,
            Message::Keepalive => self.keepalives_received += 1,
            Message::RouteRefresh(_) => self.route_refresh_received += 1,
        }
    }
}

/// (announced, withdrawn) prefixes in one UPDATE, classic fields and MP attributes together.
fn prefix_counts(update: &metallb_core::bgp::Update) -> (u64, u64) {
    let attrs = &update.attributes;
    let announced = update.nlri.len() + attrs.mp_reach.as_ref().map_or(0, |r| r.nlri.len());
    let withdrawn = update.withdrawn.len() + attrs.mp_unreach.as_ref().map_or(0, |u| u.withdrawn.len());
    (announced as u64, withdrawn as u64)
}

/// One peer as the thread last saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct PeerStatus {
    pub name: String,
    /// The peer's address and port.
    pub address: SocketAddr,
    pub state: State,
    pub established_since: Option<Instant>,
    /// What the OPENs agreed, from OpenConfirm on.
    pub negotiated: Option<Negotiated>,
    /// This end of the TCP connection, while there is one.
    pub local_address: Option<SocketAddr>,
    /// The next hops the routes carry (known once connected, or configured).
    pub next_hops: NextHops,
    /// Why the last attempt or session ended, or why routes cannot be sent; cleared when established.
    pub last_error: Option<String>,
    pub counters: Counters,
    /// Prefixes set for this peer.
    pub prefixes_configured: usize,
    /// Prefixes the peer holds from us now (announced and not withdrawn in this session).
    pub prefixes_advertised: usize,
    /// Prefixes whose announcement or withdrawal is still to be sent.
    pub prefixes_pending: usize,
    /// Why some pending prefixes cannot be sent on the established session (family not agreed, no next hop).
    pub unsendable: Option<String>,
    /// The peer's BFD session, when it has one (as the BFD thread last saw it).
    pub bfd: Option<BfdStatus>,
    /// BFD declared the path down: the session stays down until BFD is up again.
    pub held_by_bfd: bool,
}

/// What happened to a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// The session reached Established.
    Up,
    /// A connection ended after TCP was up (established or not): see `reason`, and `notification` when a
    /// NOTIFICATION (either way) ended it.
    Down,
    /// A TCP connection could not be opened (refused, unreachable, timed out; an MD5 mismatch looks like a
    /// time-out).
    ConnectFailed,
    /// The peer sent a NOTIFICATION: it refused us (wrong ASN, bad OPEN) or closed the session. Followed by
    /// a `Down`.
    NotificationReceived,
    /// We sent a NOTIFICATION (we refused the peer, its hold timer expired, or a Cease). Followed by a
    /// `Down`.
    NotificationSent,
    /// The peer's BFD session came up (the BGP session may connect).
    BfdUp,
    /// The peer's BFD session went down: see `reason` (the diagnostic). When the path failed, the BGP
    /// session ends with a Cease "BFD down" and waits for BFD.
    BfdDown,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Up => "up",
            EventKind::Down => "down",
            EventKind::ConnectFailed => "connect_failed",
            EventKind::NotificationReceived => "notification_received",
            EventKind::NotificationSent => "notification_sent",
            EventKind::BfdUp => "bfd_up",
            EventKind::BfdDown => "bfd_down",
        }
    }
}

/// One event of one peer's session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub peer: String,
    pub kind: EventKind,
    /// In words, e.g. "notification received: OPEN message error / bad peer AS (2/2)".
    pub reason: String,
    /// (code, subcode) of the NOTIFICATION involved, if any.
    pub notification: Option<(u8, u8)>,
    pub at: Instant,
}

impl Event {
    pub(crate) fn up(peer: &str, negotiated: &Negotiated, local: Option<IpAddr>, at: Instant) -> Event {
        let from = local.map(|l| format!(" from {l}")).unwrap_or_default();
        Event {
            peer: peer.to_string(),
            kind: EventKind::Up,
            reason: format!(
                "established{from} with AS {} (router ID {}), hold time {} s",
                negotiated.peer_asn, negotiated.peer_router_id, negotiated.hold_time
            ),
            notification: None,
            at,
        }
    }

    pub(crate) fn notification(peer: &str, kind: EventKind, n: &Notification, at: Instant) -> Event {
        let direction = if kind == EventKind::NotificationSent { "sent" } else { "received" };
        Event {
            peer: peer.to_string(),
            kind,
            reason: format!("notification {direction}: {}", describe_notification(n.code, n.subcode)),
            notification: Some((n.code, n.subcode)),
            at,
        }
    }

    /// A change of the peer's BFD session; `held` when it holds the BGP session down.
    pub(crate) fn bfd(change: &BfdChange, held: bool, at: Instant) -> Event {
        let (kind, reason) = if change.to == BfdState::Up {
            (EventKind::BfdUp, format!("BFD session up (was {})", change.from))
        } else {
            let effect = if held { "; the BGP session waits for BFD" } else { "" };
            (EventKind::BfdDown, format!("BFD session {} ({}){effect}", change.to, change.diag))
        };
        Event { peer: change.name.clone(), kind, reason, notification: None, at }
    }

    /// The event of a `Down` action: a failed attempt, or the end of a connection.
    pub(crate) fn down(peer: &str, down: &Down, hint: Option<&str>, at: Instant) -> Event {
        let stopped = matches!(down.reason, DownReason::Stopped { .. } | DownReason::PathDown | DownReason::Abandoned);
        let kind = if down.from == State::Connect && !stopped { EventKind::ConnectFailed } else { EventKind::Down };
        // Only a connection that got as far as TCP carried a NOTIFICATION.
        let notification = match &down.reason {
            DownReason::NotificationReceived(n) | DownReason::NotificationSent { notification: n, .. } => {
                Some((n.code, n.subcode))
            }
            DownReason::HoldTimerExpired => Some((code::HOLD_TIMER_EXPIRED, code::UNSPECIFIC)),
            DownReason::Stopped { subcode } if down.from != State::Connect => Some((code::CEASE, *subcode)),
            DownReason::PathDown if down.from != State::Connect => Some((code::CEASE, code::CEASE_BFD_DOWN)),
            _ => None,
        };
        let mut reason = down.reason.to_string();
        if let Some(hint) = hint {
            reason.push_str(" (");
            reason.push_str(hint);
            reason.push(')');
        }
        Event { peer: peer.to_string(), kind, reason, notification, at }
    }
}
