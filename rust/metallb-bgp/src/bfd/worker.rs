//! The BFD thread: every session's state machine, its send socket, the shared receive sockets, and the loop
//! that waits in poll() for a packet, a command or the earliest session timer.

use std::collections::hash_map::RandomState;
use std::collections::BTreeMap;
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::os::fd::AsFd;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use metallb_core::bfd::packet::{encode, State, MULTIHOP_PORT, SINGLE_HOP_PORT, SOURCE_PORTS};
use metallb_core::bfd::session::{Output, Session, SessionConfig, Timers};
use metallb_sys::udp::{self, OpenError, OpenStep, UdpOpen};
use metallb_sys::worker::lock;
use metallb_sys::{Interest, Poller};

use super::demux::{demux, Arrival, Key, Verdict};
use super::{BfdChange, BfdPeer, BfdStatus, Command};
use crate::thread::{self, Inbox, Reply};
use crate::BgpError;

/// Longer than any control packet (24 bytes, up to 52 with authentication); a longer datagram is dropped.
pub(super) const RECEIVE_BUFFER: usize = 128;
/// Datagrams read from one socket before the thread looks at its timers and commands again.
const MAX_DATAGRAMS_PER_WAKE: usize = 64;
/// Random source ports tried before a session gives up (a port in use is tried again with another).
const SOURCE_PORT_TRIES: usize = 64;
/// The TTL (hop limit) of everything sent, single-hop and multihop (RFC 5881 5, RFC 5883 5).
const SEND_TTL: u8 = 255;
/// AdminDown packets a removed session sends (at its interval) before it is forgotten, and the longest it
/// is kept for them.
const LEAVING_PACKETS: u64 = 3;
const LEAVING_AT_MOST: Duration = Duration::from_secs(5);

/// A receive socket: one per family and port (single-hop or multihop).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Port {
    ipv6: bool,
    multihop: bool,
}

impl Port {
    fn of(peer: &BfdPeer) -> Port {
        Port { ipv6: peer.peer.is_ipv6(), multihop: peer.multihop }
    }

    fn number(self) -> u16 {
        if self.multihop {
            MULTIHOP_PORT
        } else {
            SINGLE_HOP_PORT
        }
    }

    fn wildcard(self) -> SocketAddr {
        let ip = if self.ipv6 { IpAddr::V6(Ipv6Addr::UNSPECIFIED) } else { IpAddr::V4(Ipv4Addr::UNSPECIFIED) };
        SocketAddr::new(ip, self.number())
    }

    fn describe(self) -> String {
        let kind = if self.multihop { "multihop" } else { "single-hop" };
        let family = if self.ipv6 { "IPv6" } else { "IPv4" };
        format!("the {kind} {family} BFD port {}", self.number())
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct Counters {
    control_sent: u64,
    control_received: u64,
    up_events: u64,
    down_events: u64,
    dropped: u64,
}

/// One session with its send socket.
struct Entry {
    name: String,
    peer: BfdPeer,
    session: Session,
    socket: UdpSocket,
    destination: SocketAddr,
    counters: Counters,
}

impl Entry {
    fn key(&self) -> Key {
        Key {
            peer: self.peer.peer,
            local: self.peer.local,
            multihop: self.peer.multihop,
            discriminator: self.session.local_discriminator(),
            minimum_ttl: self.peer.settings.minimum_ttl,
        }
    }

    fn status(&self) -> BfdStatus {
        let s = &self.session;
        BfdStatus {
            name: self.name.clone(),
            peer: self.peer.peer,
            multihop: self.peer.multihop,
            state: s.state(),
            remote_state: s.remote_state(),
            local_diag: s.local_diag(),
            remote_diag: s.remote_diag(),
            local_discriminator: s.local_discriminator(),
            remote_discriminator: s.remote_discriminator(),
            transmit_interval: s.tx_interval(),
            detection_time: s.detection_time(),
            control_sent: self.counters.control_sent,
            control_received: self.counters.control_received,
            echo_sent: 0,
            echo_received: 0,
            up_events: self.counters.up_events,
            down_events: self.counters.down_events,
            dropped: self.counters.dropped,
        }
    }

    /// Sends the packets the state machine asked for and records its state changes.
    fn flush(&mut self, out: &mut Vec<Output>, changes: &mut Vec<BfdChange>) {
        for output in out.drain(..) {
            match output {
                Output::Send(packet) => {
                    // A send that fails (no route while a link is down, a full buffer) is a lost packet, which
                    // is what BFD detects: the peer's detection timer is the right reaction, not ours.
                    if self.socket.send_to(&encode(&packet), self.destination).is_ok() {
                        self.counters.control_sent += 1;
                    }
                }
                Output::StateChanged { from, to, diag } => {
                    if to == State::Up {
                        self.counters.up_events += 1;
                    } else if from == State::Up {
                        self.counters.down_events += 1;
                    }
                    changes.push(BfdChange { name: self.name.clone(), from, to, diag });
                }
            }
        }
    }
}

/// A removed session sending its last AdminDown packets.
struct Leaving {
    entry: Entry,
    sent_before: u64,
    until: Instant,
}

impl Leaving {
    fn done(&self, now: Instant) -> bool {
        self.entry.counters.control_sent >= self.sent_before + LEAVING_PACKETS
            || now >= self.until
            || self.entry.session.next_deadline().is_none()
    }
}

pub(super) struct Worker {
    inbox: Inbox<Command>,
    snapshot: Arc<Mutex<Vec<BfdStatus>>>,
    on_change: Box<dyn Fn(BfdChange) + Send>,
    /// Sorted by name.
    entries: Vec<Entry>,
    leaving: Vec<Leaving>,
    receivers: BTreeMap<Port, UdpSocket>,
    random: Random,
    out: Vec<Output>,
    changes: Vec<BfdChange>,
    buf: [u8; RECEIVE_BUFFER],
}

impl Worker {
    pub(super) fn new(
        inbox: Inbox<Command>,
        snapshot: Arc<Mutex<Vec<BfdStatus>>>,
        on_change: Box<dyn Fn(BfdChange) + Send>,
    ) -> Worker {
        Worker {
            inbox,
            snapshot,
            on_change,
            entries: Vec::new(),
            leaving: Vec::new(),
            receivers: BTreeMap::new(),
            random: Random::new(),
            out: Vec::new(),
            changes: Vec::new(),
            buf: [0; RECEIVE_BUFFER],
        }
    }

    fn position(&self, name: &str) -> Result<usize, usize> {
        self.entries.binary_search_by(|e| e.name.as_str().cmp(name))
    }

    /// Runs every timer that is due: periodic transmissions, detection time expiry.
    fn run_timers(&mut self, now: Instant) {
        for entry in &mut self.entries {
            if entry.session.next_deadline().is_some_and(|d| d <= now) {
                entry.session.on_timer(now, &mut self.out);
                entry.flush(&mut self.out, &mut self.changes);
            }
        }
        for leaving in &mut self.leaving {
            if leaving.entry.session.next_deadline().is_some_and(|d| d <= now) {
                leaving.entry.session.on_timer(now, &mut self.out);
                leaving.entry.flush(&mut self.out, &mut self.changes);
            }
        }
        let leaving = self.leaving.len();
        self.leaving.retain(|l| !l.done(now));
        if self.leaving.len() < leaving {
            self.close_unused_receivers();
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        let entries = self.entries.iter().filter_map(|e| e.session.next_deadline());
        entries
            .chain(self.leaving.iter().map(|l| l.entry.session.next_deadline().unwrap_or(l.until).min(l.until)))
            .min()
    }

    /// Reads what `port`'s socket has queued and gives each packet to its session.
    fn receive(&mut self, port: Port, now: Instant) {
        let Some(socket) = self.receivers.get(&port) else { return };
        let keys: Vec<Key> = self.entries.iter().map(Entry::key).collect();
        for _ in 0..MAX_DATAGRAMS_PER_WAKE {
            // An error reading (never expected on a UDP socket) ends this round; poll says if more is queued.
            let Ok(Some(info)) = udp::recv(socket, &mut self.buf) else { break };
            let arrival = Arrival {
                bytes: &self.buf[..info.len],
                truncated: info.truncated,
                source: info.source.ip(),
                destination: info.destination,
                ttl: info.ttl,
                multihop: port.multihop,
            };
            match demux(&arrival, &keys) {
                Verdict::Deliver(i, packet) => {
                    let entry = &mut self.entries[i];
                    if entry.session.check(&packet).is_err() {
                        // Authenticated (we configure none), or failing a check decoding does not make.
                        entry.counters.dropped += 1;
                        continue;
                    }
                    entry.counters.control_received += 1;
                    entry.session.on_packet(&packet, now, &mut self.out);
                    entry.flush(&mut self.out, &mut self.changes);
                }
                Verdict::Drop { session: Some(i), reason: _ } => self.entries[i].counters.dropped += 1,
                Verdict::Drop { session: None, reason: _ } => {}
            }
        }
    }

    fn handle(&mut self, command: Command, now: Instant) {
        match command {
            Command::SetSession { name, peer, reply } => {
                let result = self.set_session(name, *peer, now);
                self.close_unused_receivers();
                self.answer(reply, result);
            }
            Command::RemoveSession { name, reply } => {
                let removed = match self.position(&name) {
                    Ok(i) => {
                        let entry = self.entries.remove(i);
                        self.retire(entry, now);
                        true
                    }
                    Err(_) => false,
                };
                self.close_unused_receivers();
                self.answer(reply, Ok(removed));
            }
        }
    }

    fn set_session(&mut self, name: String, peer: BfdPeer, now: Instant) -> Result<(), BgpError> {
        let existing = self.position(&name);
        if let Ok(i) = existing {
            let entry = &mut self.entries[i];
            if entry.peer.same_endpoints(&peer) {
                if entry.peer.settings != peer.settings {
                    let config = session_config(&peer, entry.session.config().jitter_seed);
                    entry.session.reconfigure(config, now, &mut self.out);
                    entry.peer = peer;
                    entry.flush(&mut self.out, &mut self.changes);
                }
                return Ok(());
            }
        }
        // A new session (or one with other endpoints): open everything it needs before touching the old one.
        self.open_receiver(Port::of(&peer), &name, &peer)?;
        let socket = self.open_sender(&name, &peer)?;
        let discriminator = self.new_discriminator();
        let session = Session::new(session_config(&peer, self.random.next()), discriminator, now);
        let destination = SocketAddr::new(peer.peer, Port::of(&peer).number());
        // A removed session with these endpoints must stop sending AdminDown: the peer would take it for
        // the new one's and go down again.
        self.leaving.retain(|l| !l.entry.peer.same_endpoints(&peer));
        let entry = Entry { name, peer, session, socket, destination, counters: Counters::default() };
        match existing {
            Ok(i) => {
                let old = std::mem::replace(&mut self.entries[i], entry);
                self.retire(old, now);
            }
            Err(i) => self.entries.insert(i, entry),
        }
        Ok(())
    }

    /// AdminDown to the peer now and for a few more packets, then the session is gone.
    fn retire(&mut self, mut entry: Entry, now: Instant) {
        let sent_before = entry.counters.control_sent;
        entry.session.admin_down(now, &mut self.out);
        entry.flush(&mut self.out, &mut self.changes);
        self.leaving.push(Leaving { entry, sent_before, until: now + LEAVING_AT_MOST });
    }

    fn open_receiver(&mut self, port: Port, name: &str, peer: &BfdPeer) -> Result<(), BgpError> {
        if self.receivers.contains_key(&port) {
            return Ok(());
        }
        let spec = UdpOpen { local: port.wildcard(), ttl: None, receive_info: true };
        let socket = udp::open(&spec).map_err(|err| {
            let what = port.describe();
            let advice = match err.source.kind() {
                io::ErrorKind::AddrInUse => format!(
                    "; another BFD daemon (FRR's bfdd?) holds {} in this network namespace: stop it, or run \
                     metallb-py's BFD in another namespace",
                    port.number()
                ),
                _ => format!(" ({})", step_text(err.step)),
            };
            io_error(name, peer, format!("cannot receive on {what}{advice}"), err)
        })?;
        self.receivers.insert(port, socket);
        Ok(())
    }

    /// A socket of the session's own, from a random free source port (RFC 5881 4: 49152-65535).
    fn open_sender(&mut self, name: &str, peer: &BfdPeer) -> Result<UdpSocket, BgpError> {
        let ip = peer.local.unwrap_or(if peer.peer.is_ipv6() {
            IpAddr::V6(Ipv6Addr::UNSPECIFIED)
        } else {
            IpAddr::V4(Ipv4Addr::UNSPECIFIED)
        });
        let ports = u64::from(SOURCE_PORTS.end() - SOURCE_PORTS.start()) + 1;
        let mut last = None;
        for _ in 0..SOURCE_PORT_TRIES {
            let port = SOURCE_PORTS.start() + (self.random.next() % ports) as u16;
            let spec = UdpOpen { local: SocketAddr::new(ip, port), ttl: Some(SEND_TTL), receive_info: false };
            match udp::open(&spec) {
                Ok(socket) => return Ok(socket),
                Err(err) if err.source.kind() == io::ErrorKind::AddrInUse => last = Some(err),
                Err(err) => {
                    let what = match (err.source.kind(), peer.local) {
                        (io::ErrorKind::AddrNotAvailable, Some(local)) => format!(
                            "cannot send from {local}: it is not an address of this host (in this network \
                             namespace); set local to one of its addresses, or leave it out"
                        ),
                        _ => format!("cannot open the socket to send to it ({})", step_text(err.step)),
                    };
                    return Err(io_error(name, peer, what, err));
                }
            }
        }
        let err = last.expect("at least one port was tried");
        let what = format!(
            "no free source port: {SOURCE_PORT_TRIES} random ones in {}-{} were all in use",
            SOURCE_PORTS.start(),
            SOURCE_PORTS.end()
        );
        Err(io_error(name, peer, what, err))
    }

    /// Closes the receive sockets no session uses. A removed session still sending AdminDown keeps its
    /// port's: a session added again at once reuses that socket rather than binding the port anew, which
    /// could fail while a child process forked elsewhere in this process still holds the old one between
    /// its fork and its exec.
    fn close_unused_receivers(&mut self) {
        let sessions = self.entries.iter().chain(self.leaving.iter().map(|l| &l.entry));
        let used: Vec<Port> = sessions.map(|e| Port::of(&e.peer)).collect();
        self.receivers.retain(|port, _| used.contains(port));
    }

    /// Random, nonzero, and not any session's (a removed one's included, while it still sends).
    fn new_discriminator(&mut self) -> u32 {
        loop {
            let candidate = self.random.next() as u32;
            let taken = self.entries.iter().chain(self.leaving.iter().map(|l| &l.entry));
            if candidate != 0 && !taken.map(|e| e.session.local_discriminator()).any(|d| d == candidate) {
                return candidate;
            }
        }
    }

    /// Replaces the snapshot, then reports the state changes: a callback that reads the status sees them.
    fn publish(&mut self) {
        let snapshot: Vec<BfdStatus> = self.entries.iter().map(Entry::status).collect();
        *lock(&self.snapshot) = snapshot;
        for change in self.changes.drain(..) {
            (self.on_change)(change);
        }
    }

    /// Answers a command once its effects are visible (sent, published, reported).
    fn answer<T>(&mut self, reply: Reply<T>, result: Result<T, BgpError>) {
        self.publish();
        let _ = reply.send(result);
    }
}

impl thread::Worker for Worker {
    fn run(&mut self) -> Result<(), String> {
        let mut poller = Poller::new(&[]);
        loop {
            if self.inbox.control.stopping() {
                return Ok(());
            }
            self.run_timers(Instant::now());
            self.publish();

            poller.clear();
            poller.add(self.inbox.wake.as_fd(), Interest::READ);
            let ports: Vec<Port> = self.receivers.keys().copied().collect();
            for socket in self.receivers.values() {
                poller.add(socket.as_fd(), Interest::READ);
            }
            let timeout = self.next_deadline().map(|d| d.saturating_duration_since(Instant::now()));
            poller.wait(timeout).map_err(|e| format!("poll failed: {e}"))?;

            let now = Instant::now();
            for (i, port) in ports.into_iter().enumerate() {
                if poller.is_ready(i + 1) {
                    self.receive(port, now);
                }
            }
            if poller.is_ready(0) {
                self.inbox.wake.drain();
                while let Ok(command) = self.inbox.commands.try_recv() {
                    self.handle(command, now);
                }
            }
        }
    }

    /// AdminDown to every peer, one packet each at once; then the sockets close with the worker.
    fn shut_down(&mut self) {
        let now = Instant::now();
        for mut entry in std::mem::take(&mut self.entries) {
            entry.session.admin_down(now, &mut self.out);
            entry.flush(&mut self.out, &mut self.changes);
        }
        self.leaving.clear();
        self.receivers.clear();
        self.publish();
    }

    fn abandon(&mut self) {
        lock(&self.snapshot).clear();
    }
}

fn session_config(peer: &BfdPeer, jitter_seed: u64) -> SessionConfig {
    let s = &peer.settings;
    SessionConfig {
        timers: Timers {
            desired_min_tx: s.transmit_interval,
            required_min_rx: s.receive_interval,
            detect_mult: s.detect_multiplier,
        },
        passive: s.passive,
        jitter_seed,
    }
}

fn io_error(name: &str, peer: &BfdPeer, what: String, err: OpenError) -> BgpError {
    BgpError::Io { context: format!("BFD session {name:?} with {}: {what}", peer.peer), source: err.source }
}

/// What opening a socket was doing when it failed, for errors that have no better explanation.
fn step_text(step: OpenStep) -> String {
    match step {
        OpenStep::Socket => "creating a UDP socket".into(),
        OpenStep::V6Only => "making the socket IPv6-only".into(),
        OpenStep::Ttl(ttl) => format!("setting TTL {ttl}"),
        OpenStep::ReceiveTtl => "asking for the TTL of received packets".into(),
        OpenStep::ReceiveDestination => "asking for the destination of received packets".into(),
        OpenStep::Bind(addr) => format!("binding {addr}"),
    }
}

/// Discriminators, jitter seeds and source ports: they only need to differ between sessions and runs, so
/// std's per-process random hasher keys mixed with the time seed a splitmix64 sequence.
struct Random(u64);

impl Random {
    fn new() -> Random {
        let mut hasher = RandomState::new().build_hasher();
        hasher.write_u128(SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos());
        hasher.write_u32(std::process::id());
        Random(hasher.finish())
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}
