//! One peer on the speaker's thread: its state machine, its Adj-RIB-Out, and the TCP connection they run
//! on. Everything here is called by the thread only; it turns socket readiness and time into state machine
//! events, and carries out the actions the state machine returns, in order.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use metallb_core::bgp::fsm::{Action, Down, DownReason, Event as FsmEvent, Negotiated, Session, State};
use metallb_core::bgp::rib::{AdjRibOut, RouteAttrs, Unsendable, UpdateContext};
use metallb_core::bgp::{decode, encode, Afi, CodecOptions, ErrorAction, Message, Prefix, Update};
use metallb_sys::tcp::{self, Connecting, TcpConnect};
use metallb_sys::{Interest, Readiness};

use crate::config::PeerConfig;
use crate::nexthop::{self, NextHops};
use crate::status::{Counters, Event, EventKind, PeerStatus};

/// Bytes queued for a peer beyond which no more UPDATEs are built until the socket takes them: keepalives
/// and NOTIFICATIONs queue behind at most this much (about 16 full UPDATEs).
const WRITE_HIGH_WATER: usize = 64 * 1024;
/// UPDATEs built per call to the Adj-RIB-Out before the queue is looked at again.
const UPDATE_BATCH: usize = 16;
/// Bytes read from one peer per wake-up, so that one busy peer does not starve the others' timers.
const READ_PER_WAKE: usize = 256 * 1024;
/// How long a closed connection may take to send what was queued before it (a final NOTIFICATION) and to
/// see the peer close its side.
pub(crate) const DRAIN_TIMEOUT: Duration = Duration::from_secs(1);
/// Bytes a closing connection reads (and drops) per wake-up, so that a peer still sending cannot hold the
/// thread.
const DISCARD_PER_WAKE: usize = 64 * 1024;

/// What the peer hands back to the thread: events to publish, connections to finish sending then close.
#[derive(Default)]
pub(crate) struct Outbox {
    pub events: Vec<Event>,
    pub draining: Vec<Draining>,
}

/// A connection the state machine closed: the thread sends what was still queued (a NOTIFICATION, maybe
/// behind UPDATEs), ends our side, and drops the socket once the peer has closed its side too, or at the
/// deadline. Dropping it earlier, with the peer's last messages unread, would make the kernel reset the
/// connection and throw away what it had not sent yet: the NOTIFICATION, which comes last.
pub(crate) struct Draining {
    pub stream: TcpStream,
    pub queue: Vec<u8>,
    pub sent: usize,
    pub deadline: Instant,
    /// Our side is shut (FIN after the queue).
    shut: bool,
    /// The removed peer whose BFD session ends once this connection is done: its AdminDown must not
    /// overtake the Cease, or the router ends the session for "BFD down" first.
    pub bfd_after: Option<String>,
}

impl Draining {
    pub fn new(stream: TcpStream, queue: Vec<u8>, sent: usize, deadline: Instant) -> Draining {
        Draining { stream, queue, sent, deadline, shut: false, bfd_after: None }
    }

    /// What to wait for: the socket's room while bytes wait, then the peer's end of the connection.
    pub fn interest(&self) -> Interest {
        if self.sent < self.queue.len() {
            Interest::WRITE
        } else {
            Interest::READ
        }
    }

    /// Writes what it can, then shuts our side and reads (dropping it) until the peer closes; true when
    /// there is nothing left to do (the peer closed, an error, or too late).
    pub fn progress(&mut self, now: Instant) -> bool {
        while self.sent < self.queue.len() {
            match self.stream.write(&self.queue[self.sent..]) {
                Ok(0) => return true,
                Ok(n) => self.sent += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return now >= self.deadline,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return true,
            }
        }
        if !self.shut {
            self.shut = true;
            if self.stream.shutdown(std::net::Shutdown::Write).is_err() {
                return true;
            }
        }
        let mut sink = [0u8; 16 * 1024];
        let mut read = 0;
        while read < DISCARD_PER_WAKE {
            match self.stream.read(&mut sink) {
                Ok(0) => return true,
                Ok(n) => read += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return true,
            }
        }
        now >= self.deadline
    }
}

struct Stream {
    tcp: TcpStream,
    local: SocketAddr,
    read: Vec<u8>,
    queue: Vec<u8>,
    /// Bytes of `queue` already written.
    sent: usize,
}

impl Stream {
    fn pending(&self) -> usize {
        self.queue.len() - self.sent
    }
}

enum Conn {
    None,
    Connecting(Connecting),
    Open(Stream),
}

pub(crate) struct Peer {
    pub config: PeerConfig,
    session: Session,
    rib: AdjRibOut,
    conn: Conn,
    counters: Counters,
    last_error: Option<String>,
    next_hops: NextHops,
    codec: CodecOptions,
    /// The negotiated parameters while established (the routes are sent with them).
    established: Option<Negotiated>,
    /// Routes were given (set, advertised or withdrawn) since the peer was added. With graceful restart
    /// nothing is sent before: the End-of-RIB after an empty table would make a peer that kept our routes
    /// across our restart drop them all.
    routes_given: bool,
}

impl Peer {
    /// A peer whose session starts at once. The configuration was validated by the caller.
    pub fn start(config: PeerConfig, now: Instant, out: &mut Outbox) -> Peer {
        Peer::restart(config, AdjRibOut::new(), Counters::default(), false, now, out)
    }

    fn restart(
        config: PeerConfig,
        rib: AdjRibOut,
        counters: Counters,
        routes_given: bool,
        now: Instant,
        out: &mut Outbox,
    ) -> Peer {
        // PeerConfig::validate ran the state machine's own checks.
        let session = Session::new(config.session_config(), now).expect("a validated peer configuration");
        let next_hops = NextHops { v4: config.next_hop_v4, v6: config.next_hop_v6 };
        let mut peer = Peer {
            config,
            session,
            rib,
            conn: Conn::None,
            counters,
            last_error: None,
            next_hops,
            codec: CodecOptions::default(),
            established: None,
            routes_given,
        };
        peer.feed(FsmEvent::Start, now, out);
        peer
    }

    /// Ends the session with a Cease of `subcode` (it goes out before the connection closes) and hands back
    /// what a successor session keeps: the routes and the counters.
    pub fn stop(mut self, subcode: u8, now: Instant, out: &mut Outbox) -> (AdjRibOut, Counters) {
        self.feed(FsmEvent::Stop { subcode }, now, out);
        self.close(now, out);
        self.rib.reset_sent();
        (self.rib, self.counters)
    }

    /// Applies a new configuration: the same session keeps running (only next hops changed: the routes are
    /// sent again with them), another one replaces it after a Cease "other configuration change". Returns
    /// the peer and whether the session was restarted.
    pub fn reconfigure(mut self, config: PeerConfig, now: Instant, out: &mut Outbox) -> (Peer, bool) {
        if self.config.same_session(&config) {
            if self.config != config {
                let before = self.next_hops;
                self.config = config;
                self.refresh_next_hops();
                for (afi, had, has) in [
                    (Afi::Ipv4, before.v4.is_some(), self.next_hops.v4.is_some()),
                    (Afi::Ipv6, before.v6.is_some(), self.next_hops.v6.is_some()),
                ] {
                    if had && !has {
                        // No next hop left to announce them with: withdrawn, so that the peer stops
                        // forwarding to the old one; they go out again once there is a next hop.
                        self.rib.take_back(afi);
                    } else {
                        // Announced again with the new next hop (a re-announcement replaces the old route at
                        // the peer); withdrawals still pending stay pending.
                        self.rib.resend(afi);
                    }
                }
            }
            return (self, false);
        }
        let (mut rib, counters) = self.stop(metallb_core::bgp::code::CEASE_OTHER_CONFIGURATION_CHANGE, now, out);
        // Routes of a family the peer no longer carries are forgotten with it.
        let dropped: Vec<Prefix> = rib.wanted().keys().filter(|p| !config.families.has(p.afi())).copied().collect();
        for prefix in dropped {
            rib.withdraw(prefix);
        }
        (Peer::restart(config, rib, counters, true, now, out), true)
    }

    /// Ends the session at a speaker's stop: without a NOTIFICATION when both sides negotiated graceful
    /// restart (the peer keeps our routes, as stale, until the restarted speaker sends them again and its
    /// End-of-RIB), else with a Cease of `subcode` as [`Peer::stop`].
    pub fn stop_for_restart(mut self, subcode: u8, now: Instant, out: &mut Outbox) {
        let graceful = self.session.negotiated().is_some_and(|n| n.end_of_rib && n.peer_graceful_restart.is_some());
        if graceful {
            self.feed(FsmEvent::Abandon, now, out);
            self.close(now, out);
        } else {
            self.stop(subcode, now, out);
        }
    }

    /// What BFD says of the path to the peer: down ends the session at once (Cease "BFD down") and holds it
    /// down; up lets it connect at once.
    pub fn set_path(&mut self, up: bool, now: Instant, out: &mut Outbox) {
        self.feed(if up { FsmEvent::PathUp } else { FsmEvent::PathDown }, now, out);
    }

    /// Whether BFD holds the session down.
    pub fn path_down(&self) -> bool {
        self.session.is_path_down()
    }

    pub fn set_routes(&mut self, routes: BTreeMap<Prefix, RouteAttrs>) {
        self.routes_given = true;
        self.rib.set_wanted(routes);
        self.find_missing_next_hops();
    }

    pub fn advertise(&mut self, prefix: Prefix, route: RouteAttrs) {
        self.routes_given = true;
        self.rib.advertise(prefix, route);
        self.find_missing_next_hops();
    }

    /// A family without a next hop when the session came up may have one now (an address added since):
    /// nothing of that family was sent yet, so taking it changes no route the peer holds.
    fn find_missing_next_hops(&mut self) {
        if self.next_hops.v4.is_some() && self.next_hops.v6.is_some() {
            return;
        }
        let before = self.next_hops;
        self.refresh_next_hops();
        self.next_hops = NextHops { v4: before.v4.or(self.next_hops.v4), v6: before.v6.or(self.next_hops.v6) };
    }

    pub fn withdraw(&mut self, prefix: Prefix) -> bool {
        self.routes_given = true;
        self.rib.withdraw(prefix)
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        self.session.next_deadline()
    }

    /// What to wait for on the socket, if there is one.
    pub fn interest(&self) -> Option<(std::os::fd::BorrowedFd<'_>, Interest)> {
        use std::os::fd::AsFd;
        match &self.conn {
            Conn::None => None,
            Conn::Connecting(c) => Some((c.stream().as_fd(), Interest::WRITE)),
            Conn::Open(s) => {
                // Writable while bytes wait, and while UPDATEs wait to be built: pump() stops at the high-water
                // mark, and without this the rest of a large table would wait for some unrelated wake-up.
                let more = s.pending() > 0 || self.sendable_context().is_some_and(|c| self.rib.has_pending(&c));
                Some((s.tcp.as_fd(), Interest { read: true, write: more }))
            }
        }
    }

    /// Runs the timers that are due.
    pub fn tick(&mut self, now: Instant, out: &mut Outbox) {
        let due = |peer: &Peer| peer.session.next_deadline().is_some_and(|d| d <= now);
        if !due(self) {
            return;
        }
        // The thread may have been busy past a deadline (a command applying a very large table): what the
        // peer sent meanwhile counts first, or its KEEPALIVEs, unread, would pass for silence.
        if matches!(self.conn, Conn::Open(_)) {
            self.receive(now, out);
        }
        if due(self) {
            let actions = self.session.poll(now);
            self.apply(actions, now, out);
        }
    }

    /// Handles what poll() found on the socket.
    pub fn on_ready(&mut self, ready: Readiness, now: Instant, out: &mut Outbox) {
        match &self.conn {
            Conn::None => {}
            Conn::Connecting(_) => {
                if ready.any() {
                    self.finish_connect(now, out);
                }
            }
            Conn::Open(_) => {
                if ready.readable || ready.hangup || ready.error {
                    self.receive(now, out);
                }
                if ready.writable {
                    self.flush(now, out);
                }
            }
        }
    }

    /// Builds UPDATEs while established and the queue has room, then writes what the socket takes.
    pub fn pump(&mut self, now: Instant, out: &mut Outbox) {
        if let (Some(context), Conn::Open(_)) = (self.sendable_context(), &self.conn) {
            while self.queued() < WRITE_HIGH_WATER && self.rib.has_pending(&context) {
                let updates = self.rib.next_updates(&context, UPDATE_BATCH);
                if updates.is_empty() {
                    break;
                }
                for update in updates {
                    self.send(Message::Update(update), now, out);
                }
            }
        }
        self.flush(now, out);
    }

    pub fn status(&self) -> PeerStatus {
        let local_address = match &self.conn {
            Conn::Open(s) => Some(s.local),
            _ => None,
        };
        PeerStatus {
            name: self.config.name.clone(),
            address: SocketAddr::new(self.config.address, self.config.port),
            state: self.session.state(),
            established_since: self.session.established_since(),
            negotiated: self.session.negotiated().cloned(),
            local_address,
            next_hops: self.next_hops,
            last_error: self.last_error.clone(),
            counters: self.counters,
            prefixes_configured: self.rib.wanted().len(),
            prefixes_advertised: self.rib.sent_count(),
            prefixes_pending: self.rib.pending_count(),
            unsendable: self.unsendable(),
            bfd: None,
            held_by_bfd: self.session.is_path_down(),
        }
    }

    /// The context UPDATEs are built with, once they may go out (see `routes_given`).
    fn sendable_context(&self) -> Option<UpdateContext> {
        if self.config.graceful_restart && !self.routes_given {
            return None;
        }
        self.update_context()
    }

    // --- the state machine

    fn feed(&mut self, event: FsmEvent, now: Instant, out: &mut Outbox) {
        let actions = self.session.handle(event, now);
        self.apply(actions, now, out);
    }

    fn apply(&mut self, actions: Vec<Action>, now: Instant, out: &mut Outbox) {
        for action in actions {
            match action {
                Action::Connect => self.connect(now, out),
                Action::Send(message) => self.send(message, now, out),
                Action::Close => self.close(now, out),
                Action::Up(negotiated) => self.up(negotiated, now, out),
                Action::Down(down) => self.down(&down, now, out),
                Action::RefreshRequested(afi, _) => self.rib.resend(afi),
            }
        }
    }

    fn up(&mut self, negotiated: Negotiated, now: Instant, out: &mut Outbox) {
        self.counters.established += 1;
        self.last_error = None;
        self.codec = CodecOptions { four_octet_as: negotiated.four_octet_as };
        let local = match &self.conn {
            Conn::Open(s) => Some(s.local.ip()),
            _ => None,
        };
        out.events.push(Event::up(&self.config.name, &negotiated, local, now));
        // A new session: the peer holds nothing from us yet.
        self.rib.reset_sent();
        self.established = Some(negotiated);
    }

    fn down(&mut self, down: &Down, now: Instant, out: &mut Outbox) {
        self.established = None;
        self.codec = CodecOptions::default();
        self.rib.reset_sent();
        if matches!(down.reason, DownReason::ConnectFailed(_) | DownReason::ConnectTimedOut(_)) {
            self.counters.connect_failures += 1;
        }
        let hint = self.hint(down);
        let event = Event::down(&self.config.name, down, hint, now);
        if !matches!(down.reason, DownReason::Stopped { .. } | DownReason::Abandoned) {
            self.last_error = Some(event.reason.clone());
        }
        out.events.push(event);
    }

    /// What to check, for the failures whose cause is not obvious from the system's words.
    fn hint(&self, down: &Down) -> Option<&'static str> {
        match &down.reason {
            DownReason::ConnectTimedOut(_) if self.config.password.is_some() => {
                Some("with a TCP MD5 password, a password mismatch looks like this: check it on both sides")
            }
            DownReason::ConnectTimedOut(_) => Some("is the peer up, reachable, and configured for this address?"),
            // Only a close before the peer answered our OPEN: later, a peer closes for reasons of its own.
            DownReason::TcpClosed if self.config.password.is_none() && down.from == State::OpenSent => {
                Some("a peer that requires a TCP MD5 password, or does not know this address, closes at once")
            }
            _ => None,
        }
    }

    // --- the connection

    fn connect(&mut self, now: Instant, out: &mut Outbox) {
        self.close(now, out);
        self.counters.connect_attempts += 1;
        let spec = TcpConnect {
            peer: SocketAddr::new(self.config.address, self.config.port),
            source: self.config.source_address,
            ttl: Some(self.config.ttl()),
            md5_key: self.config.password.as_ref().map(|p| p.as_bytes().to_vec()),
        };
        match tcp::connect(&spec) {
            Ok(connecting) if connecting.is_connected() => self.connected(connecting.finish(), now, out),
            Ok(connecting) => self.conn = Conn::Connecting(connecting),
            Err(err) => self.feed(FsmEvent::TcpFailed(err.to_string()), now, out),
        }
    }

    fn finish_connect(&mut self, now: Instant, out: &mut Outbox) {
        if let Conn::Connecting(connecting) = std::mem::replace(&mut self.conn, Conn::None) {
            self.connected(connecting.finish(), now, out);
        }
    }

    fn connected(&mut self, result: io::Result<TcpStream>, now: Instant, out: &mut Outbox) {
        let stream = result.and_then(|tcp| {
            let local = tcp.local_addr()?;
            Ok(Stream { tcp, local, read: Vec::new(), queue: Vec::new(), sent: 0 })
        });
        match stream {
            Ok(stream) => {
                self.conn = Conn::Open(stream);
                self.refresh_next_hops();
                self.feed(FsmEvent::TcpConnected, now, out);
            }
            Err(err) => self.feed(FsmEvent::TcpFailed(err.to_string()), now, out),
        }
    }

    /// The next hops for the current connection's local address (configured ones win).
    fn refresh_next_hops(&mut self) {
        let configured = NextHops { v4: self.config.next_hop_v4, v6: self.config.next_hop_v6 };
        self.next_hops = match &self.conn {
            Conn::Open(s) => {
                // Without the interface list only the session's own family gets a default next hop.
                let addresses = metallb_sys::syscall::interface_addresses().unwrap_or_default();
                nexthop::choose(s.local.ip(), &addresses, configured.v4, configured.v6)
            }
            _ => configured,
        };
    }

    fn close(&mut self, now: Instant, out: &mut Outbox) {
        match std::mem::replace(&mut self.conn, Conn::None) {
            Conn::Open(mut stream) => {
                // Whatever the socket takes at once; the rest (a final NOTIFICATION behind UPDATEs) drains,
                // then the connection waits for the peer to close its side (see Draining).
                let queue = std::mem::take(&mut stream.queue);
                let mut draining = Draining::new(stream.tcp, queue, stream.sent, now + DRAIN_TIMEOUT);
                if !draining.progress(now) {
                    out.draining.push(draining);
                }
            }
            Conn::Connecting(_) | Conn::None => {}
        }
    }

    fn queued(&self) -> usize {
        match &self.conn {
            Conn::Open(s) => s.pending(),
            _ => 0,
        }
    }

    fn send(&mut self, message: Message, now: Instant, out: &mut Outbox) {
        let Conn::Open(stream) = &mut self.conn else { return };
        if stream.sent == stream.queue.len() {
            stream.queue.clear();
            stream.sent = 0;
        }
        if let Err(err) = encode(&message, &self.codec, &mut stream.queue) {
            // A message we built and cannot encode is a bug here, not the peer's doing: say so, send nothing.
            self.last_error = Some(format!("could not encode a message for the peer: {err}"));
            return;
        }
        self.counters.count_sent(&message);
        if let Message::Notification(n) = &message {
            out.events.push(Event::notification(&self.config.name, EventKind::NotificationSent, n, now));
        }
    }

    /// Writes queued bytes until the socket would block; tells the state machine that messages went out.
    fn flush(&mut self, now: Instant, out: &mut Outbox) {
        let Conn::Open(stream) = &mut self.conn else { return };
        let mut wrote = 0;
        let mut failure = None;
        while stream.sent < stream.queue.len() {
            match stream.tcp.write(&stream.queue[stream.sent..]) {
                Ok(0) => {
                    failure = Some("the connection accepts no more data".to_string());
                    break;
                }
                Ok(n) => {
                    stream.sent += n;
                    wrote += n;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    failure = Some(e.to_string());
                    break;
                }
            }
        }
        if stream.sent == stream.queue.len() {
            stream.queue.clear();
            stream.sent = 0;
        }
        self.counters.bytes_sent += wrote as u64;
        if let Some(error) = failure {
            // A broken connection has nothing left to drain.
            self.conn = Conn::None;
            self.feed(FsmEvent::TcpFailed(error), now, out);
        } else if wrote > 0 {
            self.feed(FsmEvent::Sent, now, out);
        }
    }

    /// Reads what arrived and feeds every whole message to the state machine.
    fn receive(&mut self, now: Instant, out: &mut Outbox) {
        let mut ended = None;
        {
            let Conn::Open(stream) = &mut self.conn else { return };
            let mut chunk = [0u8; 16 * 1024];
            let mut total = 0;
            while total < READ_PER_WAKE {
                match stream.tcp.read(&mut chunk) {
                    Ok(0) => {
                        ended = Some(None);
                        break;
                    }
                    Ok(n) => {
                        stream.read.extend_from_slice(&chunk[..n]);
                        total += n;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        ended = Some(Some(e.to_string()));
                        break;
                    }
                }
            }
            self.counters.bytes_received += total as u64;
        }
        // Messages that arrived before the connection ended still count (a NOTIFICATION, then FIN).
        self.decode_all(now, out);
        if let Some(error) = ended {
            if matches!(self.conn, Conn::Open(_)) {
                self.conn = Conn::None;
                let event = match error {
                    None => FsmEvent::TcpClosed,
                    Some(error) => FsmEvent::TcpFailed(error),
                };
                self.feed(event, now, out);
            }
        }
    }

    fn decode_all(&mut self, now: Instant, out: &mut Outbox) {
        let mut used = 0;
        loop {
            let Conn::Open(stream) = &mut self.conn else { return };
            match decode(&stream.read[used..], &self.codec) {
                Ok(None) => break,
                Ok(Some((message, len))) => {
                    used += len;
                    self.counters.count_received(&message);
                    if let Message::Notification(n) = &message {
                        let kind = EventKind::NotificationReceived;
                        out.events.push(Event::notification(&self.config.name, kind, n, now));
                    }
                    self.feed(FsmEvent::Received(message), now, out);
                }
                Err(err) => match (err.action(), err.message_len) {
                    (ErrorAction::TreatAsWithdraw, Some(len)) => {
                        // RFC 7606: still an UPDATE, one that withdraws what it announces. We keep no routes
                        // of the peer's, so to the state machine it is an empty one: it restarts the hold
                        // timer (a peer sending UPDATEs sends no KEEPALIVEs), and it is an FSM error before
                        // Established like any UPDATE.
                        used += len;
                        self.last_error = Some(format!("treated a malformed UPDATE as a withdrawal: {err}"));
                        let update = Message::Update(Update::default());
                        self.counters.count_received(&update);
                        self.feed(FsmEvent::Received(update), now, out);
                    }
                    (ErrorAction::Ignore, Some(len)) => {
                        used += len;
                        self.last_error = Some(format!("ignored a message from the peer: {err}"));
                    }
                    _ => {
                        self.last_error = Some(format!("the peer sent a malformed message: {err}"));
                        self.feed(FsmEvent::Malformed(err.notification()), now, out);
                        return;
                    }
                },
            }
        }
        if let Conn::Open(stream) = &mut self.conn {
            stream.read.drain(..used);
        }
    }

    /// Why pending prefixes wait, once only unsendable ones are left (listing them costs a pass over them:
    /// not while UPDATEs are still going out).
    fn unsendable(&self) -> Option<String> {
        let context = self.update_context()?;
        if self.rib.pending_count() == 0 || self.rib.has_pending(&context) {
            return None;
        }
        unsendable_text(&self.rib.unsendable(&context))
    }

    /// What the routes are sent with, while established.
    fn update_context(&self) -> Option<UpdateContext> {
        let negotiated = self.established.as_ref()?;
        Some(UpdateContext::new(self.config.my_asn, negotiated, self.next_hops.v4, self.next_hops.v6))
    }

    pub fn has_route_family(&self, prefix: &Prefix) -> bool {
        self.config.families.has(prefix.afi())
    }
}

/// Why pending prefixes cannot be sent, in words: "2 prefixes cannot be sent: 2001:db8::10/128 and 1 more:
/// the peer did not agree to this address family".
fn unsendable_text(unsendable: &[(Prefix, Unsendable)]) -> Option<String> {
    let (first, why) = unsendable.first()?;
    let family = match first.afi() {
        Afi::Ipv4 => "IPv4",
        Afi::Ipv6 => "IPv6",
    };
    let reason = match why {
        Unsendable::FamilyNotNegotiated => format!("the peer did not agree to {family} unicast"),
        Unsendable::NoNextHop => format!(
            "no {family} next hop: the session's interface has no global {family} address; set next_hop_{}",
            if first.afi() == Afi::Ipv4 { "v4" } else { "v6" }
        ),
        Unsendable::AttributesTooLarge => "its communities alone exceed a BGP message (4096 bytes)".to_string(),
    };
    let more = match unsendable.len() {
        1 => String::new(),
        n => format!(" and {} more", n - 1),
    };
    let count = unsendable.len();
    let noun = if count == 1 { "prefix" } else { "prefixes" };
    Some(format!("{count} {noun} cannot be sent: {first}{more}: {reason}"))
}
