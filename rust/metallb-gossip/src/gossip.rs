//! The gossip member: one thread that owns the UDP socket and the membership engine.
//!
//! The thread waits in poll() on the socket and an eventfd, with the engine's next deadline as timeout. It
//! feeds every datagram to [`Engine::receive`] (at the time the kernel stamped it with), runs
//! [`Engine::tick`] when a deadline passes or after reading, sends what the engine produced, then publishes:
//! While the member sends heartbeats (a tick at least every heartbeat interval), the thread does not wake
//! for each datagram: it reads the socket at each tick, which costs a wake-up per interval instead of one
//! per peer per interval (the kernel's timestamps keep every arrival time exact). Otherwise events into a queue that callers wait on ([`Gossip::next_event`]), and a
//! snapshot of the view ([`Gossip::members`], [`Gossip::isolated`], ...) that callers read without talking to
//! the thread. Commands (join, set_peers, leave) go over a channel, the eventfd wakes the thread, and the
//! caller waits for the answer, so a `leave` has gone out when it returns. `stop` wakes the thread at once and
//! joins it; it sends nothing, so to the peers it looks like a crash (use `leave` first for a handover).

use std::collections::{BTreeMap, VecDeque};
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use metallb_core::membership::{
    validate_name, Engine, Event, MemberView, MembershipConfig, MembershipError, Quorum, Stats, Takeover, Timing,
    WatchTiming, MAX_DATAGRAM,
};
use metallb_sys::udp;
use metallb_sys::worker::{lock, panic_message};
use metallb_sys::{EventFd, Poller};

use crate::{netns, GossipError};

/// How long an API call waits for the thread's answer before deciding it is gone.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(5);
/// Datagrams read in one wake-up before the thread looks at its timers and commands again.
const MAX_DATAGRAMS_PER_WAKE: usize = 256;
/// Events kept for a caller that does not read them; the oldest are dropped beyond this (and counted).
const MAX_QUEUED_EVENTS: usize = 65_536;

/// Reads the wall clock; only to pick the generation a member starts with.
pub type WallClock = fn() -> SystemTime;

/// What the watch does to the responder, on the gossip thread, the moment it decides: wired by the caller;
/// it must not call back into the gossip.
pub trait WatchSink: Send + Sync {
    /// Announce what a takeover names (the owner went silent and a witness confirmed).
    fn take_over(&self, owner: &str, items: &[Takeover]);
    /// Answer nothing (this node hears no peer), or answer again.
    fn mute(&self, muted: bool);
    /// Announce this node's addresses again (a peer that missed it hears it again: whatever the peer took
    /// over meanwhile, it gives back, and the neighbours its announcement moved must be won back).
    fn reclaim(&self) {}
}

pub type TakeoverSink = Arc<dyn WatchSink>;

/// What to run.
#[derive(Clone, Debug)]
pub struct GossipConfig {
    /// The node name.
    pub name: String,
    /// Where the socket binds. Port 0 picks a free port; an unspecified address needs `advertise`.
    pub bind: SocketAddr,
    /// The address peers send to; defaults to `bind` (with the port actually bound).
    pub advertise: Option<SocketAddr>,
    pub secret: Vec<u8>,
    pub timing: Timing,
    pub quorum: Quorum,
    /// Heartbeats and takeover (see `metallb_core::membership::watch`); nothing is sent before `set_watch`.
    pub watch: WatchTiming,
    /// A namespace under /var/run/netns to open the socket in; `None` for the caller's.
    pub netns: Option<String>,
    /// Peers to announce to at start (more come with `join` and `set_peers`).
    pub seeds: Vec<SocketAddr>,
    /// Read once at start: the identity generation starts at its milliseconds since the epoch, so that a
    /// restart is usually newer than the life before it at once. Only a hint: when the clock stepped back
    /// between two lives, the cluster tells the member the generation it holds and the member takes a newer
    /// one (see `metallb_core::membership::Engine`). Everything else runs on the monotonic clock, so a step
    /// while running changes nothing. Tests put a stepped clock here.
    pub wall_clock: WallClock,
}

impl GossipConfig {
    pub fn new(name: &str, bind: SocketAddr, secret: &[u8]) -> Self {
        GossipConfig {
            name: name.to_string(),
            bind,
            advertise: None,
            secret: secret.to_vec(),
            timing: Timing::default(),
            quorum: Quorum::default(),
            watch: WatchTiming::default(),
            netns: None,
            seeds: Vec::new(),
            wall_clock: SystemTime::now,
        }
    }

    /// Everything that can be checked before the socket exists.
    pub fn validate(&self) -> Result<(), GossipError> {
        validate_name(&self.name)?;
        self.timing.validate()?;
        if self.bind.ip().is_unspecified() && self.advertise.is_none() {
            return Err(MembershipError::InvalidAddress {
                addr: self.bind.to_string(),
                reason: "binding to the unspecified address needs an advertise address peers can send to",
            }
            .into());
        }
        // The engine checks the rest (secret, advertise, seeds) with the real port; check here too so that
        // start() fails before a thread exists.
        let mut probe = MembershipConfig::new(&self.name, self.advertised(self.bind.port().max(1)), &self.secret);
        probe.timing = self.timing;
        probe.watch = self.watch;
        probe.validate()?;
        for seed in &self.seeds {
            metallb_core::membership::validate_peer_address(*seed)
                .map_err(|reason| MembershipError::InvalidAddress { addr: seed.to_string(), reason })?;
        }
        Ok(())
    }

    /// The advertised address once the socket is bound to `port`.
    fn advertised(&self, port: u16) -> SocketAddr {
        let mut addr = self.advertise.unwrap_or(self.bind);
        if addr.port() == 0 {
            addr.set_port(port);
        }
        addr
    }
}

/// What callers read without talking to the thread; replaced after every wake-up.
#[derive(Clone, Debug, Default)]
struct Snapshot {
    members: Vec<MemberView>,
    alive: Vec<String>,
    isolated: bool,
    stats: Stats,
    peers: Vec<SocketAddr>,
    generation: u64,
    held: Vec<String>,
    unready: Vec<String>,
}

#[derive(Default)]
struct Events {
    queue: VecDeque<Event>,
    dropped: u64,
    closed: bool,
}

struct Shared {
    stop: AtomicBool,
    /// Why the thread ended, if it ended on its own.
    failure: Mutex<Option<String>>,
    snapshot: Mutex<Snapshot>,
    events: Mutex<Events>,
    event_ready: Condvar,
    sink: Mutex<Option<TakeoverSink>>,
}

enum Command {
    Join { addrs: Vec<SocketAddr>, reply: SyncSender<Result<(), MembershipError>> },
    SetPeers { addrs: Vec<SocketAddr>, reply: SyncSender<Result<(), MembershipError>> },
    Leave { reply: SyncSender<()> },
    SetWatch { plan: WatchPlan, reply: SyncSender<()> },
}

/// What [`Gossip::set_watch`] hands the thread.
pub struct WatchPlan {
    /// Node name -> gossip address: who gets this member's heartbeats.
    pub targets: BTreeMap<String, SocketAddr>,
    /// Owner -> what this node announces if it goes silent.
    pub takeovers: BTreeMap<String, Vec<Takeover>>,
    /// Settled and announcing what it wins.
    pub ready: bool,
}

/// A running gossip member. Dropping it stops the thread (without leaving).
pub struct Gossip {
    shared: Arc<Shared>,
    commands: Mutex<Sender<Command>>,
    wake: Arc<EventFd>,
    thread: Mutex<Option<JoinHandle<()>>>,
    name: String,
    address: SocketAddr,
    local: SocketAddr,
    netns: Option<String>,
}

impl Gossip {
    /// Starts the thread, which enters the namespace, binds the socket and announces to the seeds; returns
    /// once it runs, or with the first error (bad configuration, address in use, bad namespace).
    pub fn start(config: GossipConfig) -> Result<Self, GossipError> {
        config.validate()?;
        let wake = Arc::new(
            EventFd::new().map_err(|source| GossipError::Io { context: "creating an eventfd".into(), source })?,
        );
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            failure: Mutex::new(None),
            snapshot: Mutex::new(Snapshot::default()),
            events: Mutex::new(Events::default()),
            event_ready: Condvar::new(),
            sink: Mutex::new(None),
        });
        let (command_tx, command_rx) = mpsc::channel();
        let (ready_tx, ready_rx) = mpsc::sync_channel(1);
        let netns = config.netns.clone();
        let name = config.name.clone();
        let thread = {
            let (shared, wake) = (Arc::clone(&shared), Arc::clone(&wake));
            thread::Builder::new()
                .name("metallb-gossip".into())
                .spawn(move || {
                    let mut worker = match Worker::open(&config, shared, command_rx, wake) {
                        Ok(worker) => worker,
                        Err(err) => {
                            let _ = ready_tx.send(Err(err));
                            return;
                        }
                    };
                    let _ = ready_tx.send(Ok((worker.engine.advertise(), worker.local)));
                    if let Err(err) = worker.run() {
                        *lock(&worker.shared.failure) = Some(err);
                    }
                    worker.close();
                })
                .map_err(|source| GossipError::Io { context: "starting the gossip thread".into(), source })?
        };
        match ready_rx.recv() {
            Ok(Ok((address, local))) => Ok(Gossip {
                shared,
                commands: Mutex::new(command_tx),
                wake,
                thread: Mutex::new(Some(thread)),
                name,
                address,
                local,
                netns,
            }),
            Ok(Err(err)) => {
                let _ = thread.join();
                Err(err)
            }
            Err(_) => {
                Err(GossipError::Stopped(panic_message(thread.join().err(), "it ended before binding its socket")))
            }
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The address peers send to.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The address the socket is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    pub fn netns(&self) -> Option<&str> {
        self.netns.as_deref()
    }

    /// Adds peers and announces to them at once.
    pub fn join(&self, addrs: Vec<SocketAddr>) -> Result<(), GossipError> {
        self.call(|reply| Command::Join { addrs, reply })?.map_err(GossipError::from)
    }

    /// Replaces the expected peers (see [`Engine::set_peers`]).
    pub fn set_peers(&self, addrs: Vec<SocketAddr>) -> Result<(), GossipError> {
        self.call(|reply| Command::SetPeers { addrs, reply })?.map_err(GossipError::from)
    }

    /// Replaces the watch's plan (see `metallb_core::membership::watch`).
    pub fn set_watch(&self, plan: WatchPlan) -> Result<(), GossipError> {
        self.call(|reply| Command::SetWatch { plan, reply })
    }

    /// What announces a takeover the moment it fires (`None`: nothing does; the event still comes).
    pub fn set_takeover_sink(&self, sink: Option<TakeoverSink>) {
        *lock(&self.shared.sink) = sink;
    }

    /// Owners this member's watch holds down, sorted.
    pub fn held(&self) -> Vec<String> {
        lock(&self.shared.snapshot).held.clone()
    }

    /// Peers whose heartbeat says they are not ready, sorted.
    pub fn unready(&self) -> Vec<String> {
        lock(&self.shared.snapshot).unready.clone()
    }

    /// Tells every member that this one leaves; returns once the datagrams are sent. The thread keeps running
    /// (quietly) until [`stop`](Gossip::stop); `join` comes back (with a new generation).
    pub fn leave(&self) -> Result<(), GossipError> {
        self.call(|reply| Command::Leave { reply })
    }

    pub fn members(&self) -> Vec<MemberView> {
        lock(&self.shared.snapshot).members.clone()
    }

    pub fn alive(&self) -> Vec<String> {
        lock(&self.shared.snapshot).alive.clone()
    }

    pub fn isolated(&self) -> bool {
        lock(&self.shared.snapshot).isolated
    }

    pub fn peers(&self) -> Vec<SocketAddr> {
        lock(&self.shared.snapshot).peers.clone()
    }

    pub fn generation(&self) -> u64 {
        lock(&self.shared.snapshot).generation
    }

    /// Counters, and the events dropped because nobody read them.
    pub fn stats(&self) -> (Stats, u64) {
        let stats = lock(&self.shared.snapshot).stats;
        (stats, lock(&self.shared.events).dropped)
    }

    /// The next event, waiting up to `timeout` (`None`: until one comes or the member stops). `None` when
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

    pub fn is_running(&self) -> bool {
        lock(&self.thread).as_ref().is_some_and(|t| !t.is_finished())
    }

    /// Stops the thread and closes the socket, without telling the peers (they detect it). Idempotent.
    pub fn stop(&self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.wake.notify();
        let thread = lock(&self.thread).take();
        if let Some(thread) = thread {
            let _ = thread.join();
        }
    }

    fn call<T>(&self, command: impl FnOnce(SyncSender<T>) -> Command) -> Result<T, GossipError> {
        let (reply_tx, reply_rx) = mpsc::sync_channel(1);
        if lock(&self.commands).send(command(reply_tx)).is_err() {
            return Err(self.gone());
        }
        self.wake.notify();
        reply_rx.recv_timeout(COMMAND_TIMEOUT).map_err(|err| match err {
            mpsc::RecvTimeoutError::Timeout => {
                GossipError::Stopped(format!("no answer from the gossip thread within {COMMAND_TIMEOUT:?}"))
            }
            mpsc::RecvTimeoutError::Disconnected => self.gone(),
        })
    }

    fn gone(&self) -> GossipError {
        if self.shared.stop.load(Ordering::SeqCst) {
            return GossipError::NotRunning;
        }
        let failure = lock(&self.shared.failure).clone();
        GossipError::Stopped(failure.unwrap_or_else(|| "it panicked".into()))
    }
}

impl Drop for Gossip {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A number that differs between runs and processes: the boot number of the datagrams and the probe order's
/// seed. Uniqueness is all that is needed (the secret is what authenticates), so std's per-process random
/// hasher keys, mixed with the time, are enough.
fn random_u64() -> u64 {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos());
    hasher.write_u32(std::process::id());
    hasher.finish()
}

struct Worker {
    engine: Engine,
    socket: UdpSocket,
    local: SocketAddr,
    shared: Arc<Shared>,
    commands: Receiver<Command>,
    wake: Arc<EventFd>,
    buf: Vec<u8>,
    /// The engine's epoch the published view was copied at.
    published: Option<u64>,
    /// When the socket was last found empty: no datagram read later arrived before it (a kernel stamp from
    /// a wall clock that stepped says otherwise, and loses).
    drained: Instant,
}

impl Worker {
    fn open(
        config: &GossipConfig,
        shared: Arc<Shared>,
        commands: Receiver<Command>,
        wake: Arc<EventFd>,
    ) -> Result<Self, GossipError> {
        if let Some(name) = &config.netns {
            netns::enter(name)?;
        }
        // Best effort (no privilege needed; older kernels have none): a short scheduler slice, so that on a
        // loaded node the heartbeats go out on time and a peer's silence is not this thread's.
        let _ = metallb_sys::set_current_thread_slice(Duration::from_micros(100));
        let socket = UdpSocket::bind(config.bind).map_err(|source| match source.raw_os_error() {
            Some(libc::EACCES | libc::EPERM) => GossipError::PermissionDenied {
                what: format!("binding the gossip socket to {}", config.bind),
                capability: "CAP_NET_BIND_SERVICE (ports below 1024)",
            },
            _ => GossipError::Bind { addr: config.bind, netns: config.netns.clone(), source },
        })?;
        let io = |context: &str| {
            let context = context.to_string();
            move |source| GossipError::Io { context, source }
        };
        socket.set_nonblocking(true).map_err(io("making the gossip socket non-blocking"))?;
        udp::receive_timestamps(&socket).map_err(io("asking for receive timestamps on the gossip socket"))?;
        let local = socket.local_addr().map_err(io("reading the gossip socket's address"))?;
        let mut membership = MembershipConfig::new(&config.name, config.advertised(local.port()), &config.secret);
        membership.timing = config.timing;
        membership.quorum = config.quorum;
        membership.watch = config.watch;
        // Wall-clock milliseconds: a restarted speaker's identity is usually newer than the one before it; when
        // it is not (the clock stepped back), the cluster says so and the engine takes a newer one.
        let since_epoch = (config.wall_clock)().duration_since(UNIX_EPOCH).unwrap_or_default();
        membership.generation = u64::try_from(since_epoch.as_millis()).unwrap_or(u64::MAX / 2);
        membership.boot = random_u64();
        membership.rng_seed = random_u64();
        let now = Instant::now();
        let mut engine = Engine::new(membership, now)?;
        engine.join(now, &config.seeds)?;
        let mut worker = Worker {
            engine,
            socket,
            local,
            shared,
            commands,
            wake,
            buf: vec![0; MAX_DATAGRAM + 1],
            published: None,
            drained: now,
        };
        worker.flush();
        Ok(worker)
    }

    fn run(&mut self) -> Result<(), String> {
        let mut poller = Poller::new(&[self.wake.as_fd(), self.socket.as_fd()]);
        let mut ticker = Poller::new(&[self.wake.as_fd()]);
        loop {
            if self.shared.stop.load(Ordering::SeqCst) {
                return Ok(());
            }
            let timeout = self.engine.next_deadline().saturating_duration_since(Instant::now());
            // Heartbeating: wake on the next tick (or a command) and read whatever came meanwhile.
            let watching = self.engine.watching();
            let waiter = if watching { &mut ticker } else { &mut poller };
            waiter.wait(Some(timeout)).map_err(|e| format!("poll failed: {e}"))?;
            if waiter.is_ready(0) {
                self.wake.drain();
                if self.shared.stop.load(Ordering::SeqCst) {
                    return Ok(());
                }
                while let Ok(command) = self.commands.try_recv() {
                    self.handle(command);
                }
            }
            let received = watching || poller.is_ready(1);
            if received {
                self.receive()?;
            }
            let now = Instant::now();
            // After reading what was queued, not per datagram: the watch decides on everything heard so far.
            if received || now >= self.engine.next_deadline() {
                self.engine.tick(now);
            }
            self.flush();
        }
    }

    fn handle(&mut self, command: Command) {
        let now = Instant::now();
        match command {
            Command::Join { addrs, reply } => {
                let result = self.engine.join(now, &addrs);
                self.flush();
                let _ = reply.send(result);
            }
            Command::SetPeers { addrs, reply } => {
                let result = self.engine.set_peers(now, &addrs);
                self.flush();
                let _ = reply.send(result);
            }
            Command::Leave { reply } => {
                self.engine.leave(now);
                self.flush();
                let _ = reply.send(());
            }
            Command::SetWatch { plan, reply } => {
                self.engine.set_watch(now, plan.targets, plan.takeovers, plan.ready);
                self.flush();
                let _ = reply.send(());
            }
        }
    }

    /// Reads what is queued (a bounded number of datagrams per wake-up), each at the time it arrived.
    fn receive(&mut self) -> Result<(), String> {
        for _ in 0..MAX_DATAGRAMS_PER_WAKE {
            match udp::recv(&self.socket, &mut self.buf) {
                Ok(Some(info)) => {
                    // Longer than any datagram a member sends: not ours (and truncated anyway).
                    let len = if info.truncated { MAX_DATAGRAM + 1 } else { info.len.min(MAX_DATAGRAM + 1) };
                    let now = Instant::now();
                    let waited = info.received.and_then(|at| SystemTime::now().duration_since(at).ok());
                    // Never before the socket was last found empty (a wall clock that stepped forward).
                    let arrived = waited.and_then(|w| now.checked_sub(w)).map_or(now, |at| at.max(self.drained));
                    let _ = self.engine.receive(arrived, &self.buf[..len]);
                }
                Ok(None) => {
                    self.drained = Instant::now();
                    return Ok(());
                }
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                // ICMP errors of earlier sends (port unreachable, host unreachable) surface here on Linux;
                // they say nothing the probes do not.
                Err(err) if is_transient(&err) => {}
                Err(err) => return Err(format!("receiving on the gossip socket failed: {err}")),
            }
        }
        Ok(())
    }

    /// Sends what the engine produced (heartbeats first: announcing takes a while, and this node's own
    /// standby must not miss them meanwhile), announces takeovers, and publishes its events and view.
    fn flush(&mut self) {
        for datagram in self.engine.take_outgoing() {
            if self.socket.send_to(&datagram.bytes, datagram.to).is_err() {
                // Unreachable network (a cut link), full buffer: the probes report the consequence.
                self.engine.count_send_error();
            }
        }
        let fired = self.engine.take_takeovers();
        let mute = self.engine.take_mute();
        let reclaim = self.engine.take_reclaim(Instant::now());
        if !fired.is_empty() || mute.is_some() || reclaim {
            let sink = lock(&self.shared.sink).clone();
            if let Some(sink) = sink {
                if let Some(muted) = mute {
                    sink.mute(muted);
                }
                if reclaim {
                    sink.reclaim();
                }
                for (owner, items) in &fired {
                    sink.take_over(owner, items);
                }
            }
        }
        // The view first, then the events: a caller woken by an event reads a view that already has it. The
        // view is copied only when the engine says it may have changed (heartbeats come a hundred a second).
        let epoch = self.engine.epoch();
        if self.published == Some(epoch) {
            lock(&self.shared.snapshot).stats = self.engine.stats();
        } else {
            let snapshot = Snapshot {
                members: self.engine.members(),
                alive: self.engine.alive(),
                isolated: self.engine.isolated(),
                stats: self.engine.stats(),
                peers: self.engine.peers(),
                generation: self.engine.generation(),
                held: self.engine.held(),
                unready: self.engine.unready(Instant::now()),
            };
            *lock(&self.shared.snapshot) = snapshot;
            self.published = Some(epoch);
        }
        let events = self.engine.take_events();
        if !events.is_empty() {
            let mut queue = lock(&self.shared.events);
            for event in events {
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

    /// Wakes every waiter for good: the member is gone.
    fn close(&self) {
        lock(&self.shared.events).closed = true;
        self.shared.event_ready.notify_all();
    }
}

fn is_transient(err: &io::Error) -> bool {
    matches!(
        err.raw_os_error(),
        Some(libc::ECONNREFUSED | libc::EHOSTUNREACH | libc::ENETUNREACH | libc::ENETDOWN | libc::EHOSTDOWN)
    )
}
