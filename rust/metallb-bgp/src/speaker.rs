//! The BGP speaker: one thread that owns every session of the node.
//!
//! The thread waits in poll() on an eventfd and each peer's socket, with the earliest session timer as
//! timeout. It connects, reads and decodes, runs the state machines' timers, builds UPDATEs from each
//! peer's Adj-RIB-Out while its write queue has room, writes what the sockets take, then publishes: a
//! snapshot of every peer's status that callers read without talking to the thread, and events into a queue
//! callers wait on ([`Speaker::next_event`]). Commands (add or remove a peer, set routes) go over a channel,
//! the eventfd wakes the thread, and the caller waits for the answer, so the change is in force (and visible
//! in the snapshot) when the call returns. [`Speaker::stop`] sends a Cease to every peer, gives the
//! connections up to a second to deliver it, and joins the thread.

use std::collections::{BTreeMap, VecDeque};
use std::os::fd::AsFd;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use metallb_core::bfd::packet::State as BfdState;
use metallb_core::bgp::code;
use metallb_core::bgp::Prefix;
use metallb_sys::worker::lock;
use metallb_sys::{Interest, Poller};

use crate::bfd::{Bfd, BfdChange, BfdPeer};
use crate::config::{family_name, PeerConfig};
use crate::peer::{Draining, Outbox, Peer, DRAIN_TIMEOUT};
use crate::route::Route;
use crate::status::{Event, PeerStatus};
use crate::thread::{self, Handle, Inbox, Reply};
use crate::BgpError;

/// Events kept for a caller that does not read them; the oldest are dropped beyond this (and counted).
const MAX_QUEUED_EVENTS: usize = 65_536;

/// What to run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SpeakerConfig {
    /// A namespace under /var/run/netns to open the sessions in; `None` for the caller's.
    pub netns: Option<String>,
}

/// What [`Speaker::add_peer`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddOutcome {
    /// A new peer: its session is starting.
    Added,
    /// The same session parameters: nothing changed.
    Unchanged,
    /// Only next hops changed: the routes are being sent again with them, the session stays up.
    NextHopsChanged,
    /// Session parameters changed: the old session got a Cease "other configuration change", a new one is
    /// starting.
    Restarted,
}

impl AddOutcome {
    /// Whether a session was (re)started.
    pub fn started_session(self) -> bool {
        matches!(self, AddOutcome::Added | AddOutcome::Restarted)
    }
}

#[derive(Default)]
struct Events {
    queue: VecDeque<Event>,
    dropped: u64,
    closed: bool,
}

#[derive(Default)]
struct Shared {
    snapshot: Mutex<Vec<PeerStatus>>,
    events: Mutex<Events>,
    event_ready: Condvar,
    /// The BFD thread, started with the first peer that has BFD (shared so that readers see its sessions).
    bfd: Mutex<Option<Arc<Bfd>>>,
    /// BFD state changes the BFD thread reported and this thread has not handled yet.
    bfd_changes: Mutex<Vec<BfdChange>>,
}

enum Command {
    AddPeer {
        config: Box<PeerConfig>,
        reply: Reply<AddOutcome>,
    },
    RemovePeer {
        name: String,
        reply: Reply<bool>,
    },
    SetRoutes {
        peer: String,
        routes: BTreeMap<Prefix, Route>,
        reply: Reply<()>,
    },
    Advertise {
        peer: String,
        prefix: Prefix,
        route: Route,
        reply: Reply<()>,
    },
    Withdraw {
        peer: String,
        prefix: Prefix,
        reply: Reply<bool>,
    },
    /// Makes the thread panic, so that tests can check what callers see then.
    #[cfg(test)]
    Panic {
        reply: Reply<()>,
    },
    /// Keeps the thread busy this long before it answers (a very large table takes a while to apply).
    #[cfg(test)]
    Stall {
        busy: Duration,
        reply: Reply<()>,
    },
}

/// A running speaker. Dropping it stops the thread (with a Cease to every peer).
pub struct Speaker {
    shared: Arc<Shared>,
    handle: Handle<Command>,
    netns: Option<String>,
}

impl Speaker {
    /// Starts the thread, which enters the namespace; returns once it runs, or with the namespace's error.
    pub fn start(config: SpeakerConfig) -> Result<Self, BgpError> {
        let shared = Arc::new(Shared::default());
        let (netns, worker_netns) = (config.netns.clone(), config.netns);
        let worker_shared = Arc::clone(&shared);
        let handle = thread::start("metallb-bgp", "the BGP thread", netns.as_deref(), move |inbox| {
            Ok(Worker::new(worker_shared, inbox, worker_netns))
        })?;
        Ok(Speaker { shared, handle, netns })
    }

    pub fn netns(&self) -> Option<&str> {
        self.netns.as_deref()
    }

    /// Adds a peer and starts its session, or reconfigures the peer of that name (see [`AddOutcome`]).
    /// Routes never reset a session; only a change of session parameters does.
    pub fn add_peer(&self, config: PeerConfig) -> Result<AddOutcome, BgpError> {
        config.validate()?;
        self.call(|reply| Command::AddPeer { config: Box::new(config), reply })
    }

    /// Ends the peer's session with a Cease "peer de-configured" and forgets it. False if there was none.
    pub fn remove_peer(&self, name: &str) -> Result<bool, BgpError> {
        self.call(|reply| Command::RemovePeer { name: name.to_string(), reply })
    }

    /// Makes `routes` the whole set of prefixes the peer should hold from us: announces the new and changed
    /// ones, withdraws the rest. Refused as a whole (nothing changes) if a prefix is of a family the peer
    /// does not carry.
    pub fn set_routes(&self, peer: &str, routes: BTreeMap<Prefix, Route>) -> Result<(), BgpError> {
        self.call(|reply| Command::SetRoutes { peer: peer.to_string(), routes, reply })
    }

    /// Announces one prefix (or changes its attributes), leaving the others as they are.
    pub fn advertise(&self, peer: &str, prefix: Prefix, route: Route) -> Result<(), BgpError> {
        self.call(|reply| Command::Advertise { peer: peer.to_string(), prefix, route, reply })
    }

    /// Withdraws one prefix; false if it was not set for that peer.
    pub fn withdraw(&self, peer: &str, prefix: Prefix) -> Result<bool, BgpError> {
        self.call(|reply| Command::Withdraw { peer: peer.to_string(), prefix, reply })
    }

    /// Every peer as the thread last saw it, by name, with its BFD session as the BFD thread last saw it.
    pub fn peers(&self) -> Vec<PeerStatus> {
        let mut peers = lock(&self.shared.snapshot).clone();
        self.add_bfd(&mut peers);
        peers
    }

    pub fn peer(&self, name: &str) -> Option<PeerStatus> {
        let mut peer: Vec<PeerStatus> =
            lock(&self.shared.snapshot).iter().filter(|p| p.name == name).cloned().collect();
        self.add_bfd(&mut peer);
        peer.pop()
    }

    fn add_bfd(&self, peers: &mut [PeerStatus]) {
        let Some(bfd) = lock(&self.shared.bfd).clone() else { return };
        let sessions = bfd.sessions();
        for peer in peers {
            peer.bfd = sessions.iter().find(|s| s.name == peer.name).cloned();
        }
    }

    /// The next event, waiting up to `timeout` (`None`: until one comes or the speaker stops). `None` when
    /// the wait ended without one.
    pub fn next_event(&self, timeout: Option<Duration>) -> Option<Event> {
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut events = lock(&self.shared.events);
        loop {
            if let Some(event) = events.queue.pop_front() {
                return Some(event);
            }
            if events.closed {
                return None;
            }
            events = match deadline {
                None => self.shared.event_ready.wait(events).unwrap_or_else(PoisonError::into_inner),
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return None;
                    }
                    self.shared.event_ready.wait_timeout(events, left).unwrap_or_else(PoisonError::into_inner).0
                }
            };
        }
    }

    /// Every queued event, without waiting.
    pub fn take_events(&self) -> Vec<Event> {
        lock(&self.shared.events).queue.drain(..).collect()
    }

    /// Events dropped because nobody read them.
    pub fn events_dropped(&self) -> u64 {
        lock(&self.shared.events).dropped
    }

    /// Whether the thread runs, and the BFD thread too once a peer started it: a speaker whose BFD ended on
    /// its own no longer detects failures as configured, which a caller must see.
    pub fn is_running(&self) -> bool {
        let bfd = lock(&self.shared.bfd).clone();
        self.handle.is_running() && bfd.is_none_or(|b| b.is_running())
    }

    /// Sends a Cease "administrative shutdown" to every peer with a session, waits (up to DRAIN_TIMEOUT,
    /// a second) until the peers took it and closed their side, closes the sockets and ends the thread.
    /// A session that negotiated graceful restart closes without the Cease instead: its peer keeps our
    /// routes until a restarted speaker sends them again (a rolling update). BFD peers get their AdminDown
    /// last, after the sessions closed (or the drain timed out). Idempotent.
    pub fn stop(&self) {
        self.handle.stop();
    }

    fn call<T>(&self, command: impl FnOnce(Reply<T>) -> Command) -> Result<T, BgpError> {
        self.handle.call(command)
    }
}

impl Drop for Speaker {
    fn drop(&mut self) {
        self.stop();
    }
}

struct Worker {
    netns: Option<String>,
    peers: BTreeMap<String, Peer>,
    draining: Vec<Draining>,
    out: Outbox,
    shared: Arc<Shared>,
    inbox: Inbox<Command>,
}

impl Worker {
    fn new(shared: Arc<Shared>, inbox: Inbox<Command>, netns: Option<String>) -> Self {
        Worker { netns, peers: BTreeMap::new(), draining: Vec::new(), out: Outbox::default(), shared, inbox }
    }
}

impl thread::Worker for Worker {
    fn run(&mut self) -> Result<(), String> {
        let mut poller = Poller::new(&[]);
        loop {
            if self.inbox.control.stopping() {
                return Ok(());
            }
            let now = Instant::now();
            for peer in self.peers.values_mut() {
                peer.tick(now, &mut self.out);
                peer.pump(now, &mut self.out);
            }
            self.settle(now);
            self.publish();

            // Wait for the eventfd, every socket, and the earliest timer.
            poller.clear();
            poller.add(self.inbox.wake.as_fd(), Interest::READ);
            let mut watched: Vec<(usize, &str)> = Vec::with_capacity(self.peers.len());
            for (name, peer) in &self.peers {
                if let Some((fd, interest)) = peer.interest() {
                    watched.push((poller.add(fd, interest), name));
                }
            }
            let first_draining = watched.len() + 1;
            for d in &self.draining {
                poller.add(d.stream.as_fd(), d.interest());
            }
            let deadline = self
                .peers
                .values()
                .filter_map(Peer::next_deadline)
                .chain(self.draining.iter().map(|d| d.deadline))
                .min();
            let timeout = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            poller.wait(timeout).map_err(|e| format!("poll failed: {e}"))?;

            let now = Instant::now();
            let ready: Vec<(String, metallb_sys::Readiness)> = watched
                .iter()
                .map(|&(i, name)| (name.to_string(), poller.readiness(i)))
                .filter(|(_, r)| r.any())
                .collect();
            let draining_ready = (0..self.draining.len()).map(|i| poller.readiness(first_draining + i).any());
            let draining_ready: Vec<bool> = draining_ready.collect();
            for (name, readiness) in ready {
                if let Some(peer) = self.peers.get_mut(&name) {
                    peer.on_ready(readiness, now, &mut self.out);
                }
            }
            let mut i = 0;
            let mut done_bfd = Vec::new();
            self.draining.retain_mut(|d| {
                let keep = !(draining_ready[i] || now >= d.deadline) || !d.progress(now);
                i += 1;
                if !keep {
                    done_bfd.extend(d.bfd_after.take());
                }
                keep
            });
            for name in done_bfd {
                // Unless the peer was added again meanwhile (then its BFD session is the new one's).
                if !self.peers.contains_key(&name) {
                    self.remove_bfd(&name);
                }
            }
            if poller.is_ready(0) {
                self.inbox.wake.drain();
                self.follow_bfd(now);
                while let Ok(command) = self.inbox.commands.try_recv() {
                    self.handle(command, now);
                }
            }
        }
    }

    /// Ends every session with a Cease "administrative shutdown" (none for graceful restart), gives the
    /// connections up to DRAIN_TIMEOUT to send it and see the peer close, then stops BFD, and wakes every
    /// waiter for good.
    fn shut_down(&mut self) {
        let now = Instant::now();
        for (_, peer) in std::mem::take(&mut self.peers) {
            peer.stop_for_restart(code::CEASE_ADMINISTRATIVE_SHUTDOWN, now, &mut self.out);
        }
        self.settle(now);
        self.publish();
        let deadline = now + DRAIN_TIMEOUT;
        let mut poller = Poller::new(&[]);
        while !self.draining.is_empty() {
            let now = Instant::now();
            self.draining.retain_mut(|d| !d.progress(now));
            if self.draining.is_empty() || now >= deadline {
                break;
            }
            poller.clear();
            for d in &self.draining {
                poller.add(d.stream.as_fd(), d.interest());
            }
            if poller.wait(Some(deadline.saturating_duration_since(now))).is_err() {
                break;
            }
        }
        self.draining.clear();
        // Only once the peers saw the BGP sessions close: FRR ends a session whose BFD peer says AdminDown
        // with a Cease, dropping our routes even with graceful restart, unless the session had closed first.
        let bfd = lock(&self.shared.bfd).take();
        if let Some(bfd) = bfd {
            bfd.stop();
        }
        close_events(&self.shared);
    }

    /// shut_down panicked: the snapshot no longer shows sessions that are gone, and no waiter is left.
    fn abandon(&mut self) {
        lock(&self.shared.snapshot).clear();
        close_events(&self.shared);
    }
}

impl Worker {
    /// Moves connections closed during this round to the draining list.
    fn settle(&mut self, _now: Instant) {
        self.draining.append(&mut self.out.draining);
    }

    fn handle(&mut self, command: Command, now: Instant) {
        match command {
            Command::AddPeer { config, reply } => {
                // BFD first: a peer whose BFD session cannot start is not added at all.
                let result = self.set_bfd(&config).map(|()| self.add_peer(*config, now));
                self.answer(reply, result);
            }
            Command::RemovePeer { name, reply } => {
                let removed = match self.peers.remove(&name) {
                    Some(peer) => {
                        let before = self.out.draining.len();
                        peer.stop(code::CEASE_PEER_DECONFIGURED, now, &mut self.out);
                        // BFD's AdminDown goes once the Cease is through (the connection done), or now if
                        // there is no connection to wait for.
                        match self.out.draining.get_mut(before..).and_then(|new| new.first_mut()) {
                            Some(draining) => draining.bfd_after = Some(name),
                            None => self.remove_bfd(&name),
                        }
                        true
                    }
                    None => false,
                };
                self.answer(reply, Ok(removed));
            }
            Command::SetRoutes { peer, routes, reply } => {
                let result = self.with_peer(&peer, |p| {
                    for prefix in routes.keys() {
                        check_family(p, prefix)?;
                    }
                    p.set_routes(routes);
                    Ok(())
                });
                self.answer(reply, result);
            }
            Command::Advertise { peer, prefix, route, reply } => {
                let result = self.with_peer(&peer, |p| {
                    check_family(p, &prefix)?;
                    p.advertise(prefix, route);
                    Ok(())
                });
                self.answer(reply, result);
            }
            Command::Withdraw { peer, prefix, reply } => {
                let result = self.with_peer(&peer, |p| Ok(p.withdraw(prefix)));
                self.answer(reply, result);
            }
            #[cfg(test)]
            Command::Stall { busy, reply } => {
                std::thread::sleep(busy);
                self.answer(reply, Ok(()));
            }
            #[cfg(test)]
            Command::Panic { reply } => {
                let _unanswered = reply;
                panic!("a test asked the BGP thread to panic");
            }
        }
    }

    /// Starts, changes or ends the peer's BFD session to match its configuration.
    fn set_bfd(&mut self, config: &PeerConfig) -> Result<(), BgpError> {
        let Some(settings) = &config.bfd else {
            self.remove_bfd(&config.name);
            return Ok(());
        };
        let bfd = self.bfd()?;
        let peer = BfdPeer {
            peer: config.address,
            local: config.source_address,
            multihop: config.ebgp_multihop,
            settings: settings.clone(),
        };
        bfd.set_session(&config.name, peer)
    }

    /// Ends the peer's BFD session if it has one; a BGP session BFD held down is free to connect.
    fn remove_bfd(&mut self, name: &str) {
        let bfd = lock(&self.shared.bfd).clone();
        if let Some(bfd) = bfd {
            // Only fails when the BFD thread is gone, which leaves no session to end.
            let _ = bfd.remove_session(name);
        }
        let now = Instant::now();
        if let Some(peer) = self.peers.get_mut(name) {
            if peer.path_down() {
                peer.set_path(true, now, &mut self.out);
            }
        }
    }

    /// The BFD thread, started in the speaker's namespace the first time a peer needs it. Its changes are
    /// queued for this thread, which they wake.
    fn bfd(&mut self) -> Result<Arc<Bfd>, BgpError> {
        if let Some(bfd) = lock(&self.shared.bfd).clone() {
            return Ok(bfd);
        }
        let (shared, wake) = (Arc::clone(&self.shared), Arc::clone(&self.inbox.wake));
        let on_change = Box::new(move |change: BfdChange| {
            lock(&shared.bfd_changes).push(change);
            wake.notify();
        });
        let bfd = Arc::new(Bfd::start(self.netns.as_deref(), on_change)?);
        *lock(&self.shared.bfd) = Some(Arc::clone(&bfd));
        Ok(bfd)
    }

    /// Applies what BFD reported: up lets a held session connect at once; a path that failed (down from
    /// up, and not the peer's own administrative down, which RFC 5882 says is no failure) ends the BGP
    /// session and holds it until BFD is up again.
    fn follow_bfd(&mut self, now: Instant) {
        let changes = std::mem::take(&mut *lock(&self.shared.bfd_changes));
        if changes.is_empty() {
            return;
        }
        let bfd = lock(&self.shared.bfd).clone();
        for change in changes {
            let Some(peer) = self.peers.get_mut(&change.name) else { continue };
            let remote_admin_down = || {
                bfd.as_ref()
                    .and_then(|b| b.session(&change.name))
                    .is_some_and(|s| s.remote_state == BfdState::AdminDown)
            };
            let held = if change.to == BfdState::Up {
                peer.set_path(true, now, &mut self.out);
                false
            } else if change.from == BfdState::Up && change.to == BfdState::Down && !remote_admin_down() {
                peer.set_path(false, now, &mut self.out);
                true
            } else {
                false
            };
            if change.to == BfdState::Up || change.from == BfdState::Up {
                self.out.events.push(Event::bfd(&change, held, now));
            }
        }
    }

    fn add_peer(&mut self, config: PeerConfig, now: Instant) -> AddOutcome {
        let name = config.name.clone();
        match self.peers.remove(&name) {
            None => {
                self.peers.insert(name, Peer::start(config, now, &mut self.out));
                AddOutcome::Added
            }
            Some(peer) => {
                // BFD settings are the BFD thread's (set_bfd applied them): not a change of this session.
                let unchanged =
                    PeerConfig { bfd: None, ..peer.config.clone() } == PeerConfig { bfd: None, ..config.clone() };
                let (peer, restarted) = peer.reconfigure(config, now, &mut self.out);
                self.peers.insert(name, peer);
                match (unchanged, restarted) {
                    (true, _) => AddOutcome::Unchanged,
                    (false, false) => AddOutcome::NextHopsChanged,
                    (false, true) => AddOutcome::Restarted,
                }
            }
        }
    }

    fn with_peer<T>(&mut self, name: &str, f: impl FnOnce(&mut Peer) -> Result<T, BgpError>) -> Result<T, BgpError> {
        let peer = self.peers.get_mut(name).ok_or_else(|| BgpError::UnknownPeer(name.to_string()))?;
        f(peer)
    }

    /// Answers a command once its effects are visible: sends what it queued, publishes, then replies.
    fn answer<T>(&mut self, reply: Reply<T>, result: Result<T, BgpError>) {
        let now = Instant::now();
        for peer in self.peers.values_mut() {
            peer.pump(now, &mut self.out);
        }
        self.settle(now);
        self.publish();
        let _ = reply.send(result);
    }

    /// Replaces the snapshot, then queues the round's events: a caller woken by an event reads a snapshot
    /// that already shows it.
    fn publish(&mut self) {
        let snapshot: Vec<PeerStatus> = self.peers.values().map(Peer::status).collect();
        *lock(&self.shared.snapshot) = snapshot;
        if self.out.events.is_empty() {
            return;
        }
        let mut queue = lock(&self.shared.events);
        for event in self.out.events.drain(..) {
            if queue.queue.len() >= MAX_QUEUED_EVENTS {
                queue.queue.pop_front();
                queue.dropped += 1;
            }
            queue.queue.push_back(event);
        }
        drop(queue);
        self.shared.event_ready.notify_all();
    }
}

/// Wakes every waiter for good: the thread sends no more events.
fn close_events(shared: &Shared) {
    lock(&shared.events).closed = true;
    shared.event_ready.notify_all();
}

fn check_family(peer: &Peer, prefix: &Prefix) -> Result<(), BgpError> {
    if peer.has_route_family(prefix) {
        return Ok(());
    }
    Err(BgpError::InvalidRoute(format!(
        "prefix {prefix} is {}, but peer {:?} carries {} only (add the family to its families)",
        family_name(prefix.afi()),
        peer.config.name,
        peer.config.families.afis().iter().map(|a| family_name(*a)).collect::<Vec<_>>().join(" and "),
    )))
}

#[cfg(test)]
mod tests {
    use std::io::{self, Read, Write};
    use std::net::TcpListener;

    use metallb_core::bgp::{decode, encode_to_vec, Afi, Capability, CodecOptions, Message, Notification, Open, Safi};

    use super::*;
    use crate::{PeerAsn, State};

    fn peer(name: &str, port: u16) -> PeerConfig {
        let mut config = PeerConfig::new(
            name,
            "127.0.0.1".parse().unwrap(),
            64512,
            PeerAsn::Fixed(64513),
            "192.0.2.1".parse().unwrap(),
        );
        config.port = port;
        config
    }

    #[test]
    fn a_panic_on_the_thread_is_reported_and_ends_every_wait() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let speaker = Speaker::start(SpeakerConfig::default()).unwrap();
        speaker.add_peer(peer("router", listener.local_addr().unwrap().port())).unwrap();
        assert_eq!(speaker.peers().len(), 1);

        let err = speaker.call::<()>(|reply| Command::Panic { reply }).unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, BgpError::Stopped(_)), "{err:?}");
        assert!(text.contains("a test asked the BGP thread to panic"), "the panic says why: {text}");
        assert!(!speaker.is_running());
        // Waiters are released (a closed queue), and the snapshot no longer shows sessions that are gone.
        assert!(lock(&speaker.shared.events).closed, "next_event(None) would wait forever");
        assert_eq!(speaker.peers(), Vec::new());
        let again = speaker.add_peer(peer("other", 179)).unwrap_err().to_string();
        assert!(again.contains("a test asked the BGP thread to panic"), "{again}");
        speaker.stop();
    }

    /// Accepts the speaker's connection, answers its OPEN (hold time 3 s), and keeps sending KEEPALIVEs
    /// every 500 ms until the connection ends; returns every message it received.
    fn chatty_peer(listener: TcpListener) -> std::thread::JoinHandle<Vec<Message>> {
        std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            stream.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
            let opts = CodecOptions { four_octet_as: true };
            let open = Open {
                asn: 64513,
                hold_time: 3,
                router_id: "192.0.2.254".parse().unwrap(),
                capabilities: vec![Capability::Multiprotocol(Afi::Ipv4, Safi::Unicast), Capability::FourOctetAs(64513)],
            };
            let mut out = encode_to_vec(&Message::Open(open), &opts).unwrap();
            out.extend(encode_to_vec(&Message::Keepalive, &opts).unwrap());
            let (mut got, mut buf) = (Vec::new(), Vec::new());
            loop {
                if stream.write_all(&out).is_err() {
                    return got;
                }
                out = encode_to_vec(&Message::Keepalive, &opts).unwrap();
                let mut chunk = [0u8; 4096];
                match stream.read(&mut chunk) {
                    Ok(0) => return got,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(_) => return got,
                }
                while let Ok(Some((message, used))) = decode(&buf, &opts) {
                    buf.drain(..used);
                    got.push(message);
                }
            }
        })
    }

    #[test]
    fn a_busy_thread_reads_what_arrived_before_judging_the_hold_timer() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut config = peer("router", listener.local_addr().unwrap().port());
        config.hold_time = Duration::from_secs(3);
        let peer_thread = chatty_peer(listener);
        let speaker = Speaker::start(SpeakerConfig::default()).unwrap();
        speaker.add_peer(config).unwrap();
        while speaker.peer("router").unwrap().state != State::Established {
            std::thread::sleep(Duration::from_millis(10));
        }
        // Busy longer than the hold time (as with a very large table) while the peer's KEEPALIVEs arrive.
        speaker.call::<()>(|reply| Command::Stall { busy: Duration::from_millis(3500), reply }).unwrap();
        speaker.stop();
        let got = peer_thread.join().unwrap();
        let notifications: Vec<&Message> = got.iter().filter(|m| matches!(m, Message::Notification(_))).collect();
        let cease = Message::Notification(Notification { code: 6, subcode: 2, data: Vec::new() });
        assert_eq!(notifications, vec![&cease], "the session lived until stop(), no hold timer expiry (4/0)");
    }

    #[test]
    fn a_call_the_thread_takes_long_to_apply_is_answered_not_given_up() {
        let speaker = Speaker::start(SpeakerConfig::default()).unwrap();
        let busy = Duration::from_millis(5500);
        speaker.call::<()>(|reply| Command::Stall { busy, reply }).unwrap();
        assert!(speaker.is_running());
        speaker.stop();
    }
}
