//! The BGP session state machine (RFC 4271 section 8) as a pure function of events and time.
//!
//! One [`Session`] is one peer, active side only: metallb-py connects to the peer and never listens, so
//! there is no Active state and no connection collision to resolve; an OPEN that arrives in a state that
//! does not expect one is an FSM error (NOTIFICATION 5/x) like any other unexpected message.
//!
//! The runtime around it (a socket and a thread, or a test) feeds [`Session::handle`] every [`Event`] of the
//! current connection, calls [`Session::poll`] when [`Session::next_deadline`] passes, and carries out the
//! returned [`Action`]s in order. Nothing here reads a clock: time is always passed in. Events that do not
//! belong to the current state (a stale `TcpClosed` after the session already went down, bytes in Idle)
//! are ignored, so the runtime must drop the events of a connection once it has closed it.
//!
//! Timers: the connect timer (Connect, `connect_retry`), the hold timer (240 s in OpenSent as RFC 4271
//! suggests, then the negotiated hold time; restarted by every message received), the keepalive timer
//! (restarted by every message sent, reported with [`Event::Sent`]) and the retry timer (Idle after a
//! failure). Retries back off: the first after 1 s (or `connect_retry` if smaller), each next one twice as
//! late up to `connect_retry`, every gap shortened by a seeded random 0-25 % (RFC 4271 section 10 jitter);
//! a session that stayed established longer than its hold time starts over at 1 s.

use std::fmt;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::error::{code, describe_notification};
use super::message::{Afi, Capability, GracefulRestart, Message, Notification, Open, Safi};

/// Hold timer while waiting for the peer's OPEN (RFC 4271 section 8: "a large value", 4 minutes).
pub const OPEN_SENT_HOLD: Duration = Duration::from_secs(240);
/// The first retry gap after a failure (unless `connect_retry` is smaller).
pub const FIRST_RETRY: Duration = Duration::from_secs(1);
/// The hold time MetalLB (and FRR) use when none is configured.
pub const DEFAULT_HOLD_TIME: u16 = 90;
/// The connect retry time FRR uses when MetalLB's `connectTime` is not set.
pub const DEFAULT_CONNECT_RETRY: Duration = Duration::from_secs(120);
/// The longest connect retry time accepted (MetalLB's bound on `connectTime`).
pub const MAX_CONNECT_RETRY: Duration = Duration::from_secs(65535);

/// Which ASN the peer must have: MetalLB's `peerASN`, or `dynamicASN: internal | external`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerAsn {
    Fixed(u32),
    /// The peer must have our ASN (iBGP).
    Internal,
    /// The peer must have any ASN but ours (eBGP).
    External,
}

/// One session's configuration. [`SessionConfig::new`] fills in MetalLB's defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionConfig {
    pub local_asn: u32,
    pub peer_asn: PeerAsn,
    pub router_id: Ipv4Addr,
    /// Seconds; 0 (no keepalives, no hold timer) or at least 3.
    pub hold_time: u16,
    /// Seconds between keepalives; None means a third of the negotiated hold time.
    pub keepalive_time: Option<u16>,
    /// The longest gap between connection attempts, and how long one attempt may take (MetalLB
    /// `connectTime`).
    pub connect_retry: Duration,
    /// Families offered in Multiprotocol capabilities.
    pub families: Vec<(Afi, Safi)>,
    /// Advertised as is; a session that advertises it ends each family's initial table with an End-of-RIB
    /// marker ([`Negotiated::end_of_rib`]).
    pub graceful_restart: Option<GracefulRestart>,
    /// Seeds the retry jitter. Mix in something that differs between the sessions of a node (the peer
    /// address) so that they do not retry in lockstep.
    pub jitter_seed: u64,
}

impl SessionConfig {
    /// Hold time 90 s, keepalive a third of it, connect retry 120 s, IPv4 and IPv6 unicast, no graceful
    /// restart, jitter seeded from the router id.
    pub fn new(local_asn: u32, peer_asn: PeerAsn, router_id: Ipv4Addr) -> SessionConfig {
        SessionConfig {
            local_asn,
            peer_asn,
            router_id,
            hold_time: DEFAULT_HOLD_TIME,
            keepalive_time: None,
            connect_retry: DEFAULT_CONNECT_RETRY,
            families: vec![(Afi::Ipv4, Safi::Unicast), (Afi::Ipv6, Safi::Unicast)],
            graceful_restart: None,
            jitter_seed: u64::from(u32::from(router_id)),
        }
    }

    pub fn validate(&self) -> Result<(), SessionConfigError> {
        if self.local_asn == 0 {
            return Err(SessionConfigError::ZeroLocalAsn);
        }
        if self.peer_asn == PeerAsn::Fixed(0) {
            return Err(SessionConfigError::ZeroPeerAsn);
        }
        if self.router_id.is_unspecified() {
            return Err(SessionConfigError::ZeroRouterId);
        }
        if self.hold_time == 1 || self.hold_time == 2 {
            return Err(SessionConfigError::HoldTime(self.hold_time));
        }
        if let Some(keepalive) = self.keepalive_time {
            if self.hold_time != 0 && (keepalive == 0 || keepalive > self.hold_time) {
                return Err(SessionConfigError::KeepaliveTime { keepalive, hold: self.hold_time });
            }
        }
        if self.connect_retry.is_zero() || self.connect_retry > MAX_CONNECT_RETRY {
            return Err(SessionConfigError::ConnectRetry(self.connect_retry));
        }
        if self.families.is_empty() {
            return Err(SessionConfigError::NoFamilies);
        }
        Ok(())
    }
}

/// Why a [`SessionConfig`] is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionConfigError {
    #[error("local ASN 0 is reserved (RFC 7607): configure the node's real ASN")]
    ZeroLocalAsn,
    #[error("peer ASN 0 is reserved (RFC 7607): configure the peer's real ASN, or dynamicASN")]
    ZeroPeerAsn,
    #[error("router id 0.0.0.0 is not a valid BGP identifier: set routerID or give the node an IPv4 address")]
    ZeroRouterId,
    #[error("hold time {0} s is not allowed: use 0 (no keepalives) or at least 3 s")]
    HoldTime(u16),
    #[error("keepalive time {keepalive} s does not fit hold time {hold} s: use 1 s up to the hold time")]
    KeepaliveTime { keepalive: u16, hold: u16 },
    #[error("connect retry time {0:?} is out of range: use more than 0 s and at most 65535 s")]
    ConnectRetry(Duration),
    #[error("no address family to offer: list IPv4 unicast, IPv6 unicast or both")]
    NoFamilies,
}

/// RFC 4271 states, without Active (we never listen).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    Idle,
    Connect,
    OpenSent,
    OpenConfirm,
    Established,
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            State::Idle => "Idle",
            State::Connect => "Connect",
            State::OpenSent => "OpenSent",
            State::OpenConfirm => "OpenConfirm",
            State::Established => "Established",
        })
    }
}

/// What happened, as the runtime tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Begin connecting (now), and keep reconnecting after failures.
    Start,
    /// End the session with a Cease NOTIFICATION of this subcode (one of [`code`]'s `CEASE_*`) and stop
    /// reconnecting.
    Stop {
        subcode: u8,
    },
    /// The connection asked for by [`Action::Connect`] is up.
    TcpConnected,
    /// The connection attempt failed, or the connection broke with an error.
    TcpFailed(String),
    /// The peer closed the connection.
    TcpClosed,
    Received(Message),
    /// Bytes that do not decode; the NOTIFICATION the codec built for them.
    Malformed(Notification),
    /// Some message (any, ours or the RIB's) went out on the connection.
    Sent,
    /// BFD says the path to the peer is down: a connected session ends with a Cease "BFD down" (RFC 9384),
    /// an attempt is abandoned, and no new attempt starts until [`Event::PathUp`].
    PathDown,
    /// BFD says the path is back: a running session connects at once (the retry back-off starts over).
    PathUp,
    /// Close without a NOTIFICATION and stop reconnecting: a graceful restart (RFC 4724), after which a
    /// peer that negotiated it keeps our routes, as stale, until we are back or its restart timer ends.
    Abandon,
}

/// What the runtime must do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Open a TCP connection to the peer.
    Connect,
    Send(Message),
    /// Close the connection (or abandon the attempt) after sending what was asked before. Not emitted
    /// after [`Event::TcpClosed`] or [`Event::TcpFailed`]: that connection is already gone.
    Close,
    /// The session is established with these parameters: send the routes.
    Up(Negotiated),
    /// The connection or attempt is over; the routes the peer held from us are gone.
    Down(Down),
    /// The peer asked for our routes of this family again (ROUTE-REFRESH).
    RefreshRequested(Afi, Safi),
}

/// What both sides agreed in their OPENs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    /// The peer's real ASN (from the 4-octet AS capability when it sent one).
    pub peer_asn: u32,
    pub peer_router_id: Ipv4Addr,
    /// Seconds; 0 means no hold timer and no keepalives.
    pub hold_time: u16,
    /// Seconds between our keepalives; 0 when the hold time is 0.
    pub keepalive: u16,
    /// Both sides have the 4-octet AS capability (we always offer it).
    pub four_octet_as: bool,
    /// Families both offered; IPv4 unicast alone stands for a peer without Multiprotocol capabilities.
    pub families: Vec<(Afi, Safi)>,
    /// The peer accepts ROUTE-REFRESH.
    pub route_refresh: bool,
    pub peer_graceful_restart: Option<GracefulRestart>,
    pub ibgp: bool,
    /// We advertised graceful restart, which promises an End-of-RIB marker after the initial table of each
    /// family (RFC 4724 section 3): the Adj-RIB-Out sends them when this is set, and only then.
    pub end_of_rib: bool,
}

/// A session (or an attempt at one) ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Down {
    pub reason: DownReason,
    /// The state the session left.
    pub from: State,
    /// How long it had been established, if it had been.
    pub established_for: Option<Duration>,
    /// When the next attempt begins; None after [`Event::Stop`] or [`Event::Abandon`], and while BFD holds
    /// the session down ([`Event::PathDown`]: the attempt starts with [`Event::PathUp`]).
    pub retry_in: Option<Duration>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DownReason {
    ConnectFailed(String),
    /// No connection within `connect_retry`.
    ConnectTimedOut(Duration),
    /// The connection broke with an error.
    TcpError(String),
    TcpClosed,
    /// Nothing from the peer within the hold time; we sent NOTIFICATION 4/0.
    HoldTimerExpired,
    NotificationReceived(Notification),
    /// We refused the peer with this NOTIFICATION, for this reason.
    NotificationSent {
        notification: Notification,
        why: String,
    },
    Stopped {
        subcode: u8,
    },
    /// BFD declared the path down ([`Event::PathDown`]).
    PathDown,
    /// Closed without a NOTIFICATION for a graceful restart ([`Event::Abandon`]).
    Abandoned,
}

impl fmt::Display for DownReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DownReason::ConnectFailed(e) => write!(f, "connect failed: {e}"),
            DownReason::ConnectTimedOut(d) => write!(f, "no connection within {} s", d.as_secs_f64()),
            DownReason::TcpError(e) => write!(f, "connection error: {e}"),
            DownReason::TcpClosed => f.write_str("the peer closed the connection"),
            DownReason::HoldTimerExpired => f.write_str("hold timer expired: nothing heard from the peer"),
            DownReason::NotificationReceived(n) => {
                write!(f, "notification received: {}", describe_notification(n.code, n.subcode))
            }
            DownReason::NotificationSent { notification: n, why } => {
                write!(f, "notification sent: {} ({why})", describe_notification(n.code, n.subcode))
            }
            DownReason::Stopped { subcode } => {
                write!(f, "stopped: {}", describe_notification(code::CEASE, *subcode))
            }
            DownReason::PathDown => f.write_str("BFD declared the path to the peer down"),
            DownReason::Abandoned => f.write_str("closed for a graceful restart (the peer keeps our routes)"),
        }
    }
}

/// One peer's session. Time is always passed in; nothing here reads a clock.
#[derive(Debug, Clone)]
pub struct Session {
    cfg: SessionConfig,
    state: State,
    /// Start was given and Stop was not: failures schedule a retry.
    running: bool,
    /// BFD declared the path down: no attempts until it is up again.
    path_down: bool,
    negotiated: Option<Negotiated>,
    established_since: Option<Instant>,
    /// Idle: when to connect again. Connect: when to give the attempt up.
    attempt_deadline: Option<Instant>,
    hold_deadline: Option<Instant>,
    keepalive_deadline: Option<Instant>,
    /// The gap before the next retry, before jitter.
    retry_gap: Duration,
    rng: SmallRng,
}

impl Session {
    /// A session in Idle; [`Event::Start`] begins connecting.
    pub fn new(cfg: SessionConfig, _now: Instant) -> Result<Session, SessionConfigError> {
        cfg.validate()?;
        let rng = SmallRng::seed_from_u64(cfg.jitter_seed);
        let retry_gap = first_gap(&cfg);
        Ok(Session {
            cfg,
            state: State::Idle,
            running: false,
            path_down: false,
            negotiated: None,
            established_since: None,
            attempt_deadline: None,
            hold_deadline: None,
            keepalive_deadline: None,
            retry_gap,
            rng,
        })
    }

    pub fn config(&self) -> &SessionConfig {
        &self.cfg
    }

    pub fn state(&self) -> State {
        self.state
    }

    /// Whether the session was started and not stopped (it reconnects after failures).
    pub fn is_running(&self) -> bool {
        self.running
    }

    /// Whether BFD holds the session down ([`Event::PathDown`] without a later [`Event::PathUp`]).
    pub fn is_path_down(&self) -> bool {
        self.path_down
    }

    /// What was agreed with the peer, from OpenConfirm on.
    pub fn negotiated(&self) -> Option<&Negotiated> {
        self.negotiated.as_ref()
    }

    pub fn established_since(&self) -> Option<Instant> {
        self.established_since
    }

    /// When [`poll`](Session::poll) has something to do next.
    pub fn next_deadline(&self) -> Option<Instant> {
        [self.attempt_deadline, self.hold_deadline, self.keepalive_deadline].into_iter().flatten().min()
    }

    /// The OPEN this session sends.
    pub fn open_message(&self) -> Open {
        let mut capabilities: Vec<Capability> = Vec::new();
        for &(afi, safi) in &self.cfg.families {
            let cap = Capability::Multiprotocol(afi, safi);
            if !capabilities.contains(&cap) {
                capabilities.push(cap);
            }
        }
        capabilities.push(Capability::RouteRefresh);
        capabilities.push(Capability::FourOctetAs(self.cfg.local_asn));
        if let Some(gr) = &self.cfg.graceful_restart {
            capabilities.push(Capability::GracefulRestart(gr.clone()));
        }
        Open { asn: self.cfg.local_asn, hold_time: self.cfg.hold_time, router_id: self.cfg.router_id, capabilities }
    }

    pub fn handle(&mut self, event: Event, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        match event {
            Event::Start => {
                if !self.running {
                    self.running = true;
                    self.retry_gap = first_gap(&self.cfg);
                    if self.state == State::Idle && !self.path_down {
                        self.connect(now, &mut out);
                    }
                }
            }
            Event::Stop { subcode } => {
                self.running = false;
                match self.state {
                    State::Idle => self.attempt_deadline = None,
                    State::Connect => {
                        out.push(Action::Close);
                        self.down(DownReason::Stopped { subcode }, now, &mut out);
                    }
                    State::OpenSent | State::OpenConfirm | State::Established => {
                        let n = Notification { code: code::CEASE, subcode, data: Vec::new() };
                        out.push(Action::Send(Message::Notification(n)));
                        out.push(Action::Close);
                        self.down(DownReason::Stopped { subcode }, now, &mut out);
                    }
                }
            }
            Event::PathDown => {
                self.path_down = true;
                match self.state {
                    State::Idle => self.attempt_deadline = None,
                    State::Connect => {
                        out.push(Action::Close);
                        self.down(DownReason::PathDown, now, &mut out);
                    }
                    State::OpenSent | State::OpenConfirm | State::Established => {
                        let n = Notification { code: code::CEASE, subcode: code::CEASE_BFD_DOWN, data: Vec::new() };
                        out.push(Action::Send(Message::Notification(n)));
                        out.push(Action::Close);
                        self.down(DownReason::PathDown, now, &mut out);
                    }
                }
            }
            Event::PathUp => {
                if self.path_down {
                    self.path_down = false;
                    self.retry_gap = first_gap(&self.cfg);
                    if self.running && self.state == State::Idle {
                        self.connect(now, &mut out);
                    }
                }
            }
            Event::Abandon => {
                self.running = false;
                match self.state {
                    State::Idle => self.attempt_deadline = None,
                    _ => {
                        out.push(Action::Close);
                        self.down(DownReason::Abandoned, now, &mut out);
                    }
                }
            }
            Event::TcpConnected => {
                if self.state == State::Connect {
                    self.attempt_deadline = None;
                    self.state = State::OpenSent;
                    self.hold_deadline = Some(now + OPEN_SENT_HOLD);
                    out.push(Action::Send(Message::Open(self.open_message())));
                }
            }
            Event::TcpFailed(error) => match self.state {
                State::Idle => {}
                State::Connect => self.down(DownReason::ConnectFailed(error), now, &mut out),
                _ => self.down(DownReason::TcpError(error), now, &mut out),
            },
            Event::TcpClosed => match self.state {
                State::Idle => {}
                State::Connect => self.down(DownReason::ConnectFailed("connection closed".into()), now, &mut out),
                _ => self.down(DownReason::TcpClosed, now, &mut out),
            },
            Event::Sent => {
                if matches!(self.state, State::OpenConfirm | State::Established) {
                    self.restart_keepalive(now);
                }
            }
            Event::Malformed(notification) => {
                if self.connected() {
                    let why = "the peer sent a message that does not decode".to_string();
                    self.refuse(notification, why, now, &mut out);
                }
            }
            Event::Received(message) => {
                if self.connected() {
                    self.receive(message, now, &mut out);
                }
            }
        }
        out
    }

    /// Runs the timers that are due at `now`.
    pub fn poll(&mut self, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        if self.hold_deadline.is_some_and(|d| d <= now) {
            let n = Notification { code: code::HOLD_TIMER_EXPIRED, subcode: code::UNSPECIFIC, data: Vec::new() };
            out.push(Action::Send(Message::Notification(n)));
            out.push(Action::Close);
            self.down(DownReason::HoldTimerExpired, now, &mut out);
            return out;
        }
        if self.attempt_deadline.is_some_and(|d| d <= now) {
            match self.state {
                State::Idle => self.connect(now, &mut out),
                State::Connect => {
                    out.push(Action::Close);
                    self.down(DownReason::ConnectTimedOut(self.cfg.connect_retry), now, &mut out);
                }
                _ => self.attempt_deadline = None,
            }
            return out;
        }
        if self.keepalive_deadline.is_some_and(|d| d <= now) {
            out.push(Action::Send(Message::Keepalive));
            self.restart_keepalive(now);
        }
        out
    }

    fn connected(&self) -> bool {
        matches!(self.state, State::OpenSent | State::OpenConfirm | State::Established)
    }

    fn connect(&mut self, now: Instant, out: &mut Vec<Action>) {
        self.state = State::Connect;
        self.attempt_deadline = Some(now + self.cfg.connect_retry);
        out.push(Action::Connect);
    }

    fn restart_keepalive(&mut self, now: Instant) {
        self.keepalive_deadline = match self.negotiated.as_ref().map(|n| n.keepalive) {
            Some(k) if k > 0 => Some(now + secs(k)),
            _ => None,
        };
    }

    fn restart_hold(&mut self, now: Instant) {
        self.hold_deadline = match self.negotiated.as_ref().map(|n| n.hold_time) {
            Some(h) if h > 0 => Some(now + secs(h)),
            _ => None,
        };
    }

    fn receive(&mut self, message: Message, now: Instant, out: &mut Vec<Action>) {
        if let Message::Notification(n) = message {
            out.push(Action::Close);
            self.down(DownReason::NotificationReceived(n), now, out);
            return;
        }
        match (self.state, message) {
            (State::OpenSent, Message::Open(open)) => match self.check_open(&open) {
                Ok(negotiated) => {
                    self.negotiated = Some(negotiated);
                    self.state = State::OpenConfirm;
                    self.restart_hold(now);
                    out.push(Action::Send(Message::Keepalive));
                    self.restart_keepalive(now);
                }
                Err((notification, why)) => self.refuse(notification, why, now, out),
            },
            (State::OpenConfirm, Message::Keepalive) => {
                self.state = State::Established;
                self.established_since = Some(now);
                self.restart_hold(now);
                if let Some(n) = &self.negotiated {
                    out.push(Action::Up(n.clone()));
                }
            }
            (State::Established, Message::Keepalive | Message::Update(_)) => self.restart_hold(now),
            (State::Established, Message::RouteRefresh(rr)) => {
                self.restart_hold(now);
                // RFC 2918: a refresh for a family we did not agree on is ignored.
                if self.negotiated.as_ref().is_some_and(|n| n.families.contains(&(rr.afi, rr.safi))) {
                    out.push(Action::RefreshRequested(rr.afi, rr.safi));
                }
            }
            (state, message) => {
                let subcode = match state {
                    State::OpenSent => code::FSM_UNEXPECTED_IN_OPENSENT,
                    State::OpenConfirm => code::FSM_UNEXPECTED_IN_OPENCONFIRM,
                    _ => code::FSM_UNEXPECTED_IN_ESTABLISHED,
                };
                let n = Notification { code: code::FSM_ERROR, subcode, data: Vec::new() };
                let why = format!("{} received in {state}", message_name(&message));
                self.refuse(n, why, now, out);
            }
        }
    }

    /// Checks the peer's OPEN (RFC 4271 section 6.2; the version is the codec's to check) and agrees on
    /// the session's parameters.
    fn check_open(&self, open: &Open) -> Result<Negotiated, (Notification, String)> {
        let refuse = |subcode: u8, why: String| {
            (Notification { code: code::OPEN_MESSAGE_ERROR, subcode, data: Vec::new() }, why)
        };
        let mut peer_four_octet = None;
        let mut peer_families = Vec::new();
        let mut route_refresh = false;
        let mut peer_graceful_restart = None;
        for cap in &open.capabilities {
            match cap {
                Capability::FourOctetAs(asn) => peer_four_octet = Some(*asn),
                Capability::Multiprotocol(afi, safi) => peer_families.push((*afi, *safi)),
                Capability::RouteRefresh => route_refresh = true,
                Capability::GracefulRestart(gr) => peer_graceful_restart = Some(gr.clone()),
                Capability::Unknown { .. } => {}
            }
        }
        let peer_asn = peer_four_octet.unwrap_or(open.asn);
        let local = self.cfg.local_asn;
        let asn_ok = peer_asn != 0
            && match self.cfg.peer_asn {
                PeerAsn::Fixed(expected) => peer_asn == expected,
                PeerAsn::Internal => peer_asn == local,
                PeerAsn::External => peer_asn != local,
            };
        if !asn_ok {
            let expected = match self.cfg.peer_asn {
                PeerAsn::Fixed(expected) => format!("{expected}"),
                PeerAsn::Internal => format!("{local} (internal)"),
                PeerAsn::External => format!("any but {local} (external)"),
            };
            return Err(refuse(code::BAD_PEER_AS, format!("peer AS {peer_asn}, expected {expected}")));
        }
        if open.hold_time == 1 || open.hold_time == 2 {
            let why = format!("peer hold time {} s: must be 0 or at least 3 s", open.hold_time);
            return Err(refuse(code::UNACCEPTABLE_HOLD_TIME, why));
        }
        let ibgp = peer_asn == local;
        if open.router_id.is_unspecified() || (ibgp && open.router_id == self.cfg.router_id) {
            let why = format!("peer BGP identifier {} is 0.0.0.0 or ours in iBGP", open.router_id);
            return Err(refuse(code::BAD_BGP_IDENTIFIER, why));
        }
        if peer_families.is_empty() {
            // RFC 4760: a peer without Multiprotocol capabilities speaks IPv4 unicast.
            peer_families.push((Afi::Ipv4, Safi::Unicast));
        }
        let mut families: Vec<(Afi, Safi)> = Vec::new();
        for family in &self.cfg.families {
            if peer_families.contains(family) && !families.contains(family) {
                families.push(*family);
            }
        }
        if families.is_empty() {
            let why = format!(
                "no address family in common: we offer {}, the peer {}",
                family_list(&self.cfg.families),
                family_list(&peer_families)
            );
            return Err(refuse(code::UNSUPPORTED_CAPABILITY, why));
        }
        let hold_time = self.cfg.hold_time.min(open.hold_time);
        let keepalive = match (hold_time, self.cfg.keepalive_time) {
            (0, _) => 0,
            (h, Some(k)) if k > 0 && k < h => k,
            (h, _) => h / 3,
        };
        Ok(Negotiated {
            peer_asn,
            peer_router_id: open.router_id,
            hold_time,
            keepalive,
            four_octet_as: peer_four_octet.is_some(),
            families,
            route_refresh,
            peer_graceful_restart,
            ibgp,
            end_of_rib: self.cfg.graceful_restart.is_some(),
        })
    }

    /// Sends a NOTIFICATION and ends the connection.
    fn refuse(&mut self, notification: Notification, why: String, now: Instant, out: &mut Vec<Action>) {
        out.push(Action::Send(Message::Notification(notification.clone())));
        out.push(Action::Close);
        self.down(DownReason::NotificationSent { notification, why }, now, out);
    }

    /// Back to Idle: reports why, and schedules the next attempt unless stopped.
    fn down(&mut self, reason: DownReason, now: Instant, out: &mut Vec<Action>) {
        let from = self.state;
        let established_for = self.established_since.map(|since| now.saturating_duration_since(since));
        if let (Some(lasted), Some(n)) = (established_for, &self.negotiated) {
            let hold = if n.hold_time > 0 { n.hold_time } else { DEFAULT_HOLD_TIME };
            if lasted > secs(hold) {
                self.retry_gap = first_gap(&self.cfg);
            }
        }
        self.state = State::Idle;
        self.negotiated = None;
        self.established_since = None;
        self.hold_deadline = None;
        self.keepalive_deadline = None;
        self.attempt_deadline = None;
        let retry_in = if self.running && !self.path_down {
            // Jitter: 75-100 % of the gap (RFC 4271 section 10), in milliseconds.
            let gap_ms = u64::try_from(self.retry_gap.as_millis()).unwrap_or(u64::MAX);
            let low = gap_ms - gap_ms / 4;
            let delay = Duration::from_millis(self.rng.random_range(low..=gap_ms)).max(Duration::from_millis(1));
            self.retry_gap = self.retry_gap.saturating_mul(2).min(self.cfg.connect_retry);
            self.attempt_deadline = Some(now + delay);
            Some(delay)
        } else {
            None
        };
        out.push(Action::Down(Down { reason, from, established_for, retry_in }));
    }
}

fn first_gap(cfg: &SessionConfig) -> Duration {
    FIRST_RETRY.min(cfg.connect_retry)
}

fn secs(s: u16) -> Duration {
    Duration::from_secs(u64::from(s))
}

fn message_name(message: &Message) -> &'static str {
    match message {
        Message::Open(_) => "OPEN",
        Message::Update(_) => "UPDATE",
        Message::Notification(_) => "NOTIFICATION",
        Message::Keepalive => "KEEPALIVE",
        Message::RouteRefresh(_) => "ROUTE-REFRESH",
    }
}

fn family_list(families: &[(Afi, Safi)]) -> String {
    let names: Vec<&str> = families
        .iter()
        .map(|f| match f {
            (Afi::Ipv4, Safi::Unicast) => "IPv4 unicast",
            (Afi::Ipv6, Safi::Unicast) => "IPv6 unicast",
        })
        .collect();
    names.join(" and ")
}
