//! The responder: one thread that owns the sockets, answers requests and sends gratuitous announcements.
//!
//! The thread waits in epoll on one packet socket per interface and an eventfd; each socket has a receive ring
//! (frames are read without a system call) and leaves out the host's own outgoing frames, and the thread asks
//! for the shortest scheduler slice, so a request that wakes it is answered before the task it interrupted
//! goes on (see `benches/l2_bench.py` for what a wake-up costs). The API side ([`Responder`])
//! never touches a socket: it sends a command over a channel, writes the eventfd and waits for the thread's
//! answer, so every side effect (joining a group, a gratuitous burst, opening an interface added by
//! [`Responder::set_interfaces`]) has happened when the call returns, and `stop` wakes the thread at once. The
//! announce set is an immutable [`AnnounceTable`] published with the interface names behind its positions
//! ([`Slots`]) behind an [`ArcSwap`]: the thread publishes a new one on every change, and loads the current
//! one once per batch of frames, lock-free; `announced()` reads it from any thread.
//!
//! Interfaces come and go while it runs (a VLAN created later, a link deleted): `set_interfaces` opens and
//! closes sockets on the thread (it is the one inside the network namespace), addresses announced on all
//! interfaces extend to a new one with gratuitous announcements there, and an interface deleted under the
//! thread is closed by the thread itself (it watches the namespace's link notifications: a deleted link's
//! socket just goes silent, and the error it reports once may be read while the link is still listed) and
//! reported by the next `set_interfaces`.
//!
//! The thread also watches for other hosts claiming an announced address ([`metallb_core::l2::examine`]) and
//! keeps them in a bounded [`ConflictLog`] that [`Responder::conflicts`] drains; answering goes on regardless.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use metallb_core::l2::{announcement, examine, Decision, DropReason};
use metallb_core::packet::{solicited_node_mac, FrameBuf, MacAddr};
use metallb_sys::worker::{lock, panic_message};
use metallb_sys::{Epoll, EventFd};

use crate::conflicts::{Conflict, ConflictLog};
use crate::iface::{self, InterfaceInfo, OpenInterface};
use crate::links::{LinkEvent, LinkWatch};
use crate::schedule::{GratuitousPolicy, Schedules};
use crate::stats::{self, Counters, Stats};
use crate::sys::{GroupSocket, RecvBatch, PACKET_OUTGOING};
use crate::table::{wanted_groups, AnnounceTable, InterfaceSet, Slots, MAX_INTERFACES};
use crate::L2Error;

/// How long an API call waits for the thread's answer before deciding it is gone.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(5);
/// Batches read from one socket before the thread looks at commands and other sockets again.
const MAX_BATCHES_PER_WAKE: usize = 16;
/// The scheduler time slice the thread asks for: the shortest Linux grants. The thread runs for microseconds
/// per wake-up; with the default slice (3 ms) it waits for the task it woke behind, with this one it runs first.
const WAKE_SLICE: Duration = Duration::from_micros(100);

/// What to serve and how.
#[derive(Clone, Debug)]
pub struct ResponderConfig {
    /// Interface names, in the namespace the responder runs in.
    pub interfaces: Vec<String>,
    /// A namespace under /var/run/netns to open the sockets in; `None` for the caller's.
    pub netns: Option<String>,
    pub gratuitous: GratuitousPolicy,
    /// Receive and send buffer of each socket, in bytes (best effort above `net.core.rmem_max` without
    /// CAP_NET_ADMIN). The receive buffer is what absorbs a burst of requests while the thread is descheduled:
    /// half of it (64-8192 frames of 512 bytes) is the receive ring each socket maps, locked memory.
    pub socket_buffer: usize,
    /// After answering, keep polling without sleeping for this long (zero: off). Trades a busy CPU for the
    /// wake-up latency of a sleeping thread, like the kernel's SO_BUSY_POLL.
    pub busy_poll: Duration,
    /// Pin the responder thread to this CPU (with `busy_poll`, give it a CPU of its own).
    pub cpu: Option<usize>,
}

impl ResponderConfig {
    pub fn new(interfaces: Vec<String>) -> Self {
        ResponderConfig {
            interfaces,
            netns: None,
            gratuitous: GratuitousPolicy::default(),
            socket_buffer: 4 << 20,
            busy_poll: Duration::ZERO,
            cpu: None,
        }
    }

    pub fn validate(&self) -> Result<(), L2Error> {
        if self.interfaces.is_empty() {
            return Err(L2Error::InvalidConfig("a responder needs at least one interface".into()));
        }
        check_interface_names(&self.interfaces)
    }
}

/// At most [`MAX_INTERFACES`] names, none twice.
fn check_interface_names(names: &[String]) -> Result<(), L2Error> {
    if names.len() > MAX_INTERFACES {
        return Err(L2Error::InvalidConfig(format!("a responder serves at most {MAX_INTERFACES} interfaces")));
    }
    for (i, name) in names.iter().enumerate() {
        if names[..i].contains(name) {
            return Err(L2Error::InvalidConfig(format!("interface {name:?} is listed twice")));
        }
    }
    Ok(())
}

/// What [`Responder::set_interfaces`] did.
#[derive(Debug, Default)]
pub struct InterfaceChange {
    /// Interfaces opened: new ones, and listed ones that came back or were re-created under the same name.
    pub added: Vec<InterfaceInfo>,
    /// Interfaces closed: no longer listed, gone from the system (also those the thread closed on its own
    /// since the previous call), or re-created under the same name (then in `added` too).
    pub removed: Vec<String>,
    /// Listed interfaces that could not be opened, with why; they are not served (call again to retry).
    pub failed: Vec<(String, L2Error)>,
}

enum Command {
    Announce { ip: IpAddr, interfaces: Option<Vec<String>>, reply: SyncSender<Result<bool, L2Error>> },
    Withdraw { ip: IpAddr, reply: SyncSender<bool> },
    SetInterfaces { names: Vec<String>, reply: SyncSender<InterfaceChange> },
    Stats { reply: SyncSender<Stats> },
    Conflicts { reply: SyncSender<Vec<Conflict>> },
    Mute { muted: bool, reply: SyncSender<bool> },
    Reannounce { ip: Option<IpAddr>, reply: SyncSender<bool> }, // None: every address
}

/// What the thread publishes, swapped whole: the announce set, the names behind its positions, and what the
/// served interfaces are.
#[derive(Default, Debug)]
struct View {
    table: AnnounceTable,
    slots: Slots,
    interfaces: Vec<InterfaceInfo>,
}

struct Shared {
    view: ArcSwap<View>,
    stop: AtomicBool,
    /// Why the thread ended, if it ended on its own.
    failure: Mutex<Option<String>>,
}

/// A running responder. Dropping it stops the thread.
pub struct Responder {
    shared: Arc<Shared>,
    commands: Mutex<Sender<Command>>,
    wake: Arc<EventFd>,
    thread: Mutex<Option<JoinHandle<()>>>,
    netns: Option<String>,
}

impl Responder {
    /// Starts the thread, which enters the namespace and opens every interface; returns once it is answering,
    /// or with the first error (missing interface, no permission, no MAC, bad namespace).
    pub fn start(config: ResponderConfig) -> Result<Self, L2Error> {
        config.validate()?;
        let wake = Arc::new(EventFd::new().map_err(|e| L2Error::io("creating an eventfd", "CAP_NET_RAW", e))?);
        let shared = Arc::new(Shared {
            view: ArcSwap::from_pointee(View::default()),
            stop: AtomicBool::new(false),
            failure: Mutex::new(None),
        });
        let (command_tx, command_rx) = mpsc::channel();
        let (ready_tx, ready_rx) = mpsc::sync_channel(1);
        let netns = config.netns.clone();
        let thread = {
            let (shared, wake) = (Arc::clone(&shared), Arc::clone(&wake));
            thread::Builder::new()
                .name("metallb-l2".into())
                .spawn(move || {
                    let mut worker = match Worker::open(&config, shared, command_rx, wake) {
                        Ok(worker) => worker,
                        Err(err) => {
                            let _ = ready_tx.send(Err(err));
                            return;
                        }
                    };
                    let _ = ready_tx.send(Ok(()));
                    if let Err(err) = worker.run() {
                        *lock(&worker.shared.failure) = Some(err);
                    }
                })
                .map_err(|e| L2Error::io("starting the responder thread", "CAP_NET_RAW", e))?
        };
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(Responder {
                shared,
                commands: Mutex::new(command_tx),
                wake,
                thread: Mutex::new(Some(thread)),
                netns,
            }),
            Ok(Err(err)) => {
                let _ = thread.join();
                Err(err)
            }
            Err(_) => Err(L2Error::Stopped(panic_message(thread.join().err(), "it ended before opening its sockets"))),
        }
    }

    /// Answers for `ip` on `interfaces` (names of served interfaces; `None`: all of the responder's, those
    /// added later included) from now on, and sends gratuitous frames at once and on the schedule on each
    /// interface it was not announced on before. Returns false when `ip` was already announced on exactly
    /// these interfaces (nothing is sent again).
    pub fn announce(&self, ip: IpAddr, interfaces: Option<&[String]>) -> Result<bool, L2Error> {
        check_announceable(ip)?;
        if interfaces.is_some_and(<[String]>::is_empty) {
            return Err(L2Error::InvalidConfig(format!("announcing {ip} on no interface: give at least one")));
        }
        let interfaces = interfaces.map(<[String]>::to_vec);
        self.call(|reply| Command::Announce { ip, interfaces, reply })?
    }

    /// Stops answering for `ip` (done when this returns), its schedule and its group memberships. Returns
    /// whether it was announced.
    pub fn withdraw(&self, ip: IpAddr) -> Result<bool, L2Error> {
        self.call(|reply| Command::Withdraw { ip, reply })
    }

    /// Serves exactly the interfaces `names` from now on: opens those not served (an interface created after
    /// the start, or one that came back), closes the others, and re-opens a listed one whose link was
    /// re-created under the same name (another index or MAC). An address announced on all interfaces is
    /// answered on a new one at once, with gratuitous announcements there; one announced on named interfaces
    /// is answered again on a named one that comes back. An interface that cannot be opened is reported in
    /// [`InterfaceChange::failed`] and the others are served all the same. Errors only for a bad list
    /// (duplicates, more than [`MAX_INTERFACES`]), which changes nothing, or a stopped thread.
    pub fn set_interfaces(&self, names: &[String]) -> Result<InterfaceChange, L2Error> {
        check_interface_names(names)?;
        let names = names.to_vec();
        self.call(|reply| Command::SetInterfaces { names, reply })
    }

    /// The announced addresses with the names of the interfaces each is answered on now, sorted (an address
    /// announced only on interfaces that are gone has an empty list).
    pub fn announced(&self) -> BTreeMap<IpAddr, Vec<String>> {
        let view = self.shared.view.load();
        let served = view.slots.served();
        view.table
            .iter()
            .map(|(ip, set)| {
                let names = set.intersect(served).positions().filter_map(|p| view.slots.name(p));
                (ip, names.map(str::to_string).collect())
            })
            .collect()
    }

    pub fn stats(&self) -> Result<Stats, L2Error> {
        self.call(|reply| Command::Stats { reply })
    }

    /// Muted, it answers nothing and sends no gratuitous frame, but keeps what it announces (announce and
    /// withdraw work as usual) and keeps watching for conflicts; unmuted, it answers again and announces every
    /// address at once, with a fresh gratuitous schedule. The gossip mutes it the moment its node hears no
    /// peer (its cable cut: the others take its addresses over), long before the speaker withdraws. Returns
    /// whether that changed anything.
    pub fn set_muted(&self, muted: bool) -> Result<bool, L2Error> {
        self.call(|reply| Command::Mute { muted, reply })
    }

    /// Announces `ip` again, as if it were new: gratuitous frames at once and on a fresh schedule, on every
    /// served interface it is answered on. For an address another host claimed: its neighbours now send to
    /// that host, and only a new announcement brings them back. Returns false (and sends nothing) when `ip`
    /// is not announced or the responder is muted.
    pub fn reannounce(&self, ip: IpAddr) -> Result<bool, L2Error> {
        self.call(|reply| Command::Reannounce { ip: Some(ip), reply })
    }

    /// [`reannounce`](Responder::reannounce) for every announced address: the node was silent for a moment
    /// and a peer may have taken its addresses over meanwhile. Returns whether anything was sent.
    pub fn reannounce_all(&self) -> Result<bool, L2Error> {
        self.call(|reply| Command::Reannounce { ip: None, reply })
    }

    /// The other hosts seen claiming an address announced on the interface they were seen on, since the last
    /// call (this one drains them): each (address, MAC, interface) once, in the order first seen, at most
    /// [`crate::conflicts::MAX_PENDING`] ([`Stats::conflicts`] counts every claim, [`Stats::conflicts_dropped`]
    /// those the full list left out). A claim is an ARP packet whose sender protocol address is the address, a
    /// neighbor advertisement for it or a solicitation from it, sent from a MAC that is none of the served
    /// interfaces' (the node's own announcements seen on another of its links are not conflicts); a duplicate
    /// address detection probe is not one (the answer to it already defends the address).
    pub fn conflicts(&self) -> Result<Vec<Conflict>, L2Error> {
        self.call(|reply| Command::Conflicts { reply })
    }

    /// The interfaces served now.
    pub fn interfaces(&self) -> Vec<InterfaceInfo> {
        self.shared.view.load().interfaces.clone()
    }

    pub fn netns(&self) -> Option<&str> {
        self.netns.as_deref()
    }

    pub fn is_running(&self) -> bool {
        lock(&self.thread).as_ref().is_some_and(|t| !t.is_finished())
    }

    /// Stops the thread and closes the sockets (which leaves every group). Idempotent.
    pub fn stop(&self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.wake.notify();
        let thread = lock(&self.thread).take();
        if let Some(thread) = thread {
            let _ = thread.join();
        }
    }

    fn call<T>(&self, command: impl FnOnce(SyncSender<T>) -> Command) -> Result<T, L2Error> {
        let (reply_tx, reply_rx) = mpsc::sync_channel(1);
        let sent = lock(&self.commands).send(command(reply_tx));
        if sent.is_err() {
            return Err(self.gone());
        }
        self.wake.notify();
        reply_rx.recv_timeout(COMMAND_TIMEOUT).map_err(|err| match err {
            mpsc::RecvTimeoutError::Timeout => {
                L2Error::Stopped(format!("no answer from the responder thread within {COMMAND_TIMEOUT:?}"))
            }
            mpsc::RecvTimeoutError::Disconnected => self.gone(),
        })
    }

    fn gone(&self) -> L2Error {
        if self.shared.stop.load(Ordering::SeqCst) {
            return L2Error::NotRunning;
        }
        let failure = lock(&self.shared.failure).clone();
        L2Error::Stopped(failure.unwrap_or_else(|| "it panicked".into()))
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Addresses no host may claim on a link.
fn check_announceable(ip: IpAddr) -> Result<(), L2Error> {
    let reason = match ip {
        _ if ip.is_unspecified() => Some("it is the unspecified address"),
        _ if ip.is_multicast() => Some("it is a multicast address"),
        _ if ip.is_loopback() => Some("it is a loopback address"),
        IpAddr::V4(v4) if v4.is_broadcast() => Some("it is the broadcast address"),
        _ => None,
    };
    match reason {
        Some(reason) => Err(L2Error::InvalidAddress { ip, reason }),
        None => Ok(()),
    }
}

/// How the responder belongs to a solicited-node group on one interface.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Membership {
    /// IPv6-level join: the kernel sends MLD reports and programs the NIC filter.
    Ipv6,
    /// Ethernet-level membership only, when IPv6 is disabled on the interface.
    Ethernet,
}

struct Worker {
    /// The open interfaces, by position (see [`Slots`]).
    interfaces: Vec<Option<OpenInterface>>,
    slots: Slots,
    /// (index in the poller, position) of each packet socket; the eventfd is index 0, the link watch 1.
    polled: Vec<(usize, usize)>,
    /// The positions ready after a wait.
    ready: Vec<usize>,
    /// Link notifications, to close the socket of a link deleted under the thread (`None` if the kernel
    /// refused the subscription: such a socket then stays open, silent, until `set_interfaces`).
    links: Option<LinkWatch>,
    /// Interfaces the thread closed on its own (their link vanished), for the next `set_interfaces`.
    vanished: Vec<String>,
    netns: Option<String>,
    socket_buffer: usize,
    groups: Option<GroupSocket>,
    joined: BTreeMap<(usize, Ipv6Addr), Membership>,
    shared: Arc<Shared>,
    commands: Receiver<Command>,
    wake: Arc<EventFd>,
    /// Waits on the eventfd, the link watch and every open socket.
    poller: Epoll,
    /// Gratuitous announcements, per address and interface position.
    schedules: Schedules<(IpAddr, usize)>,
    policy: GratuitousPolicy,
    busy_poll: Duration,
    /// See [`Responder::set_muted`].
    muted: bool,
    counters: Counters,
    /// The MACs of the open interfaces: a claim from one of them is this node's own announcement.
    ours: Vec<MacAddr>,
    conflicts: ConflictLog,
    batch: RecvBatch,
    reply_frames: Vec<FrameBuf>,
    reply_ips: Vec<IpAddr>,
}

impl Worker {
    fn open(
        config: &ResponderConfig,
        shared: Arc<Shared>,
        commands: Receiver<Command>,
        wake: Arc<EventFd>,
    ) -> Result<Self, L2Error> {
        if let Some(cpu) = config.cpu {
            metallb_sys::pin_current_thread(cpu)
                .map_err(|e| L2Error::InvalidConfig(format!("cannot pin the responder thread to CPU {cpu}: {e}")))?;
        }
        if let Some(name) = &config.netns {
            iface::enter_netns(name)?;
        }
        // Best effort: older kernels have no slice to set, and the thread works the same without it.
        let _ = metallb_sys::set_current_thread_slice(WAKE_SLICE);
        let opened = config
            .interfaces
            .iter()
            .map(|name| iface::open(name, config.netns.as_deref(), config.socket_buffer))
            .collect::<Result<Vec<_>, _>>()?;
        let poller = Epoll::new().map_err(|e| L2Error::io("creating an epoll set", "CAP_NET_RAW", e))?;
        let mut slots = Slots::default();
        let mut interfaces = Vec::new();
        for interface in opened {
            // Validated: at most MAX_INTERFACES distinct names, so each gets the next position.
            let position = slots.assign(&interface.info.name).unwrap_or(interfaces.len());
            slots.set_served(position, true);
            interfaces.push(Some(interface));
        }
        let mut worker = Worker {
            interfaces,
            slots,
            polled: Vec::new(),
            ready: Vec::with_capacity(MAX_INTERFACES),
            links: LinkWatch::open(None).ok(),
            vanished: Vec::new(),
            netns: config.netns.clone(),
            socket_buffer: config.socket_buffer,
            // Without IPv6 in the kernel there is no AF_INET6 socket: groups fall back to Ethernet memberships.
            groups: GroupSocket::new().ok(),
            joined: BTreeMap::new(),
            shared,
            commands,
            wake,
            poller,
            schedules: Schedules::default(),
            policy: config.gratuitous,
            busy_poll: config.busy_poll,
            muted: false,
            counters: Counters::default(),
            ours: Vec::with_capacity(MAX_INTERFACES),
            conflicts: ConflictLog::default(),
            batch: RecvBatch::new(false),
            reply_frames: Vec::with_capacity(crate::sys::BATCH),
            reply_ips: Vec::with_capacity(crate::sys::BATCH),
        };
        worker.publish(AnnounceTable::default());
        worker.rebuild_poller();
        Ok(worker)
    }

    fn interface(&self, position: usize) -> Option<&OpenInterface> {
        self.interfaces.get(position).and_then(Option::as_ref)
    }

    /// The poller waits on the eventfd, the link watch and every open socket; rebuilt whenever the set
    /// changes. Registering fails only without kernel memory: the call then keeps the old set (a socket
    /// opened just now waits for the next rebuild), counted as a socket error.
    fn rebuild_poller(&mut self) {
        self.ours.clear();
        self.ours.extend(self.interfaces.iter().flatten().map(|interface| interface.info.mac));
        match self.registered() {
            Ok((poller, polled)) => {
                self.poller = poller;
                self.polled = polled;
            }
            Err(_) => self.counters.socket_errors += 1,
        }
    }

    /// A new epoll set over the eventfd (index 0), the link watch (1) and the open sockets, with the (index,
    /// position) of each socket. A closed socket leaves an epoll set by itself, so the old one stays usable.
    fn registered(&self) -> std::io::Result<(Epoll, Vec<(usize, usize)>)> {
        use metallb_sys::Interest;
        use std::os::fd::AsFd;
        let mut poller = Epoll::new()?;
        poller.add(self.wake.as_fd(), Interest::READ)?;
        if let Some(links) = &self.links {
            poller.add(links.as_fd(), Interest::READ)?;
        }
        let mut polled = Vec::with_capacity(MAX_INTERFACES);
        for (position, interface) in self.interfaces.iter().enumerate() {
            if let Some(interface) = interface {
                polled.push((poller.add(interface.socket.as_fd(), Interest::READ)?, position));
            }
        }
        Ok((poller, polled))
    }

    /// Closes the sockets of links deleted (or, after lost notifications, no longer the same link).
    fn follow_links(&mut self) {
        let Some(links) = self.links.as_mut() else { return };
        let events = match links.drain() {
            Ok(events) => events,
            Err(_) => {
                self.counters.socket_errors += 1;
                return;
            }
        };
        let mut gone = Vec::new();
        for event in events {
            for position in self.slots.served().positions() {
                let Some(interface) = self.interface(position) else { continue };
                let vanished = match &event {
                    LinkEvent::Removed { index, .. } => *index == interface.info.index,
                    LinkEvent::Overflow => !iface::still_same(interface),
                    LinkEvent::Changed { .. } => false,
                };
                if vanished && !gone.contains(&position) {
                    gone.push(position);
                }
            }
        }
        for position in gone {
            if let Some(name) = self.interface(position).map(|i| i.info.name.clone()) {
                self.close(position);
                self.vanished.push(name);
            }
        }
    }

    fn run(&mut self) -> Result<(), String> {
        // With busy polling on, the thread keeps polling without sleeping until this long after the last frame.
        let mut spin_until: Option<Instant> = None;
        loop {
            if self.shared.stop.load(Ordering::SeqCst) {
                return Ok(());
            }
            let now = Instant::now();
            let timeout = if spin_until.is_some_and(|until| now < until) {
                Some(Duration::ZERO)
            } else {
                self.schedules.next_due().map(|due| due.saturating_duration_since(now))
            };
            self.poller.wait(timeout).map_err(|e| format!("poll failed: {e}"))?;
            // A command may change the socket set: what is ready is read off the poller before it does (into a
            // buffer kept across wakes: no allocation on the packet path).
            let mut ready = std::mem::take(&mut self.ready);
            ready.clear();
            ready.extend(self.polled.iter().filter(|(index, _)| self.poller.is_ready(*index)).map(|(_, p)| *p));
            let links_ready = self.links.is_some() && self.poller.is_ready(1);
            if self.poller.is_ready(0) {
                self.wake.drain();
                if self.shared.stop.load(Ordering::SeqCst) {
                    return Ok(());
                }
                while let Ok(command) = self.commands.try_recv() {
                    self.handle(command);
                }
            }
            if links_ready {
                self.follow_links();
            }
            let mut busy = false;
            for position in &ready {
                busy |= self.answer(*position);
            }
            self.ready = ready;
            if busy && !self.busy_poll.is_zero() {
                spin_until = Some(Instant::now() + self.busy_poll);
            }
            self.send_due_announcements(Instant::now());
        }
    }

    fn handle(&mut self, command: Command) {
        match command {
            Command::Announce { ip, interfaces, reply } => {
                let _ = reply.send(self.announce(ip, interfaces));
            }
            Command::Withdraw { ip, reply } => {
                let current = self.shared.view.load_full();
                let present = current.table.get(ip).is_some();
                if present {
                    self.publish(current.table.without(ip));
                    self.schedules.cancel_where(|(a, _)| *a == ip);
                }
                let _ = reply.send(present);
            }
            Command::SetInterfaces { names, reply } => {
                let _ = reply.send(self.set_interfaces(&names));
            }
            Command::Stats { reply } => {
                let mut drops = 0;
                for interface in self.interfaces.iter().flatten() {
                    drops += interface.socket.take_drops().unwrap_or(0);
                }
                self.counters.kernel_drops += drops;
                let mut stats = self.counters.snapshot();
                stats.conflicts = self.conflicts.seen;
                stats.conflicts_dropped = self.conflicts.dropped;
                let _ = reply.send(stats);
            }
            Command::Conflicts { reply } => {
                let _ = reply.send(self.conflicts.drain());
            }
            Command::Mute { muted, reply } => {
                let changed = self.muted != muted;
                self.muted = muted;
                if changed && !muted {
                    // Back: every address announced again at once, wherever it is served.
                    let now = Instant::now();
                    let view = self.shared.view.load_full();
                    let served = self.slots.served();
                    for (ip, set) in view.table.iter() {
                        for position in set.intersect(served).positions() {
                            self.schedules.start((ip, position), self.policy, now);
                        }
                    }
                    self.send_due_announcements(now);
                }
                let _ = reply.send(changed);
            }
            Command::Reannounce { ip, reply } => {
                let view = self.shared.view.load_full();
                let served = self.slots.served();
                let mut due: Vec<_> = Vec::new();
                if !self.muted {
                    for (address, set) in view.table.iter().filter(|(a, _)| ip.is_none_or(|ip| ip == *a)) {
                        due.extend(set.intersect(served).positions().map(|position| (address, position)));
                    }
                }
                let now = Instant::now();
                for &key in &due {
                    self.schedules.start(key, self.policy, now);
                }
                self.send_due_announcements(now);
                let _ = reply.send(!due.is_empty());
            }
        }
    }

    fn announce(&mut self, ip: IpAddr, names: Option<Vec<String>>) -> Result<bool, L2Error> {
        let served = self.slots.served();
        let set = match names {
            None => InterfaceSet::ALL,
            Some(names) => {
                let positions = names
                    .iter()
                    .map(|name| {
                        self.slots.position(name).filter(|p| served.contains(*p)).ok_or_else(|| {
                            L2Error::UnknownInterface { name: name.clone(), known: self.slots.served_names() }
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                InterfaceSet::from_positions(positions)
            }
        };
        let current = self.shared.view.load_full();
        let changed = current.table.get(ip) != Some(set);
        if changed {
            self.publish(current.table.with(ip, set));
            // Neighbours on an interface it was announced on already know it: gratuitous frames go only where
            // it is new (a speaker re-announcing on one more interface does not flood the others).
            let before = current.table.get(ip).unwrap_or(InterfaceSet::EMPTY).intersect(served);
            let after = set.intersect(served);
            self.schedules.cancel_where(|(a, p)| *a == ip && !after.contains(*p));
            let now = Instant::now();
            for position in after.positions().filter(|p| !before.contains(*p)) {
                self.schedules.start((ip, position), self.policy, now);
            }
            self.send_due_announcements(now);
        }
        Ok(changed)
    }

    fn set_interfaces(&mut self, names: &[String]) -> InterfaceChange {
        let mut change = InterfaceChange { removed: std::mem::take(&mut self.vanished), ..Default::default() };
        for position in self.slots.served().positions().collect::<Vec<_>>() {
            let Some(interface) = self.interface(position) else { continue };
            let name = interface.info.name.clone();
            if !names.contains(&name) || !iface::still_same(interface) {
                self.close(position);
                change.removed.push(name);
            }
        }
        let now = Instant::now();
        for name in names {
            let served = self.slots.position(name).is_some_and(|p| self.slots.served().contains(p));
            if !served {
                match self.open_interface(name, now) {
                    Ok(info) => change.added.push(info),
                    Err(err) => change.failed.push((name.clone(), err)),
                }
            }
        }
        if !change.added.is_empty() || !change.failed.is_empty() {
            // Joins the groups of the new interfaces and frees positions a failed open took.
            self.publish(self.shared.view.load_full().table.clone());
            self.rebuild_poller();
            self.send_due_announcements(now);
        }
        change
    }

    /// Opens `name` on a position of its own (the one an announcement kept for it, if any), and starts the
    /// gratuitous schedules of the addresses announced there. The caller publishes the table.
    fn open_interface(&mut self, name: &str, now: Instant) -> Result<InterfaceInfo, L2Error> {
        let position = self.slots.assign(name).ok_or_else(|| {
            L2Error::InvalidConfig(format!(
                "cannot serve {name:?}: {MAX_INTERFACES} interfaces are served or named by announcements already"
            ))
        })?;
        let interface = iface::open(name, self.netns.as_deref(), self.socket_buffer)?;
        let info = interface.info.clone();
        if self.interfaces.len() <= position {
            self.interfaces.resize_with(position + 1, || None);
        }
        self.interfaces[position] = Some(interface);
        self.slots.set_served(position, true);
        let view = self.shared.view.load_full();
        for (ip, set) in view.table.iter() {
            if set.contains(position) {
                self.schedules.start((ip, position), self.policy, now);
            }
        }
        Ok(info)
    }

    /// Stops serving the interface at `position`: leaves its groups, ends its schedules, closes its socket.
    fn close(&mut self, position: usize) {
        self.slots.set_served(position, false);
        self.publish(self.shared.view.load_full().table.clone());
        self.schedules.cancel_where(|(_, p)| *p == position);
        if let Some(interface) = self.interfaces.get_mut(position).and_then(Option::take) {
            self.counters.kernel_drops += interface.socket.take_drops().unwrap_or(0);
        }
        self.rebuild_poller();
    }

    /// Swaps in `table` and makes the group memberships match it.
    fn publish(&mut self, table: AnnounceTable) {
        let wanted = wanted_groups(&table, self.slots.served());
        // Join before answering starts (so the first solicitation reaches us) and leave after it stops.
        let new: Vec<_> = wanted.iter().filter(|key| !self.joined.contains_key(key)).copied().collect();
        for (position, group) in new {
            if let Some(membership) = self.join(position, group) {
                self.joined.insert((position, group), membership);
            }
        }
        self.slots.release_unused(&table);
        let interfaces = self.slots.served().positions().filter_map(|p| self.interface(p)).map(|i| i.info.clone());
        let view = View { table, slots: self.slots.clone(), interfaces: interfaces.collect() };
        self.shared.view.store(Arc::new(view));
        let stale: Vec<_> = self.joined.keys().filter(|key| !wanted.contains(key)).copied().collect();
        for (position, group) in stale {
            if let Some(membership) = self.joined.remove(&(position, group)) {
                self.leave(position, group, membership);
            }
        }
    }

    fn join(&mut self, position: usize, group: Ipv6Addr) -> Option<Membership> {
        let interface = self.interface(position)?;
        if let Some(groups) = &self.groups {
            if groups.join(group, interface.info.index).is_ok() {
                return Some(Membership::Ipv6);
            }
        }
        let added = interface.socket.add_multicast(solicited_node_mac(group).octets());
        self.counters.group_fallbacks += 1;
        match added {
            Ok(()) => Some(Membership::Ethernet),
            Err(_) => {
                self.counters.socket_errors += 1;
                None
            }
        }
    }

    fn leave(&mut self, position: usize, group: Ipv6Addr, membership: Membership) {
        let Some(interface) = self.interface(position) else { return };
        let left = match (membership, &self.groups) {
            (Membership::Ipv6, Some(groups)) => groups.leave(group, interface.info.index),
            (Membership::Ipv6, None) => Ok(()),
            (Membership::Ethernet, _) => interface.socket.drop_multicast(solicited_node_mac(group).octets()),
        };
        // A link that is gone took its memberships with it: nothing to leave, and nothing wrong.
        if left.is_err_and(|err| !iface::is_gone(&err)) {
            self.counters.socket_errors += 1;
        }
    }

    /// Reads what is queued on interface `position` (a bounded number of batches) and answers it. Returns
    /// whether there was anything.
    fn answer(&mut self, position: usize) -> bool {
        let view = self.shared.view.load_full();
        let table = &view.table;
        let announced = table.on_interface(position);
        let mut any = false;
        for _ in 0..MAX_BATCHES_PER_WAKE {
            let Some(interface) = self.interfaces.get(position).and_then(Option::as_ref) else { return any };
            let received = match interface.socket.recv_batch(&mut self.batch) {
                Ok(0) => return any,
                Ok(n) => n,
                Err(err) => {
                    // ENETDOWN when the link goes down (or is deleted) is reported once; the socket works
                    // again once it is up, and a deleted link's socket is closed on its notification
                    // (follow_links). Anything else is counted too: the thread keeps serving the others.
                    if iface::is_link_down(&err) {
                        self.counters.link_down += 1;
                    } else {
                        self.counters.socket_errors += 1;
                    }
                    return any;
                }
            };
            any = true;
            self.reply_frames.clear();
            self.reply_ips.clear();
            for (frame, meta) in self.batch.frames() {
                self.counters.frames_received += 1;
                if meta.pkttype == PACKET_OUTGOING {
                    self.counters.drops[stats::SLOT_OUTGOING] += 1;
                    continue;
                }
                if meta.truncated {
                    self.counters.drops[stats::SLOT_TRUNCATED] += 1;
                    continue;
                }
                let verdict = examine(frame, &announced, &interface.core, &self.ours);
                if let Some(claim) = verdict.claim {
                    self.conflicts.record(claim, interface.info.index, &interface.info.name);
                }
                match verdict.decision {
                    Decision::Reply(_) if self.muted => self.counters.drops[stats::SLOT_MUTED] += 1,
                    Decision::Reply(reply) => {
                        let ip = reply.target();
                        self.counters.ip(ip).requests_received += 1;
                        self.reply_frames.push(reply.frame());
                        self.reply_ips.push(ip);
                    }
                    Decision::Drop(DropReason::NotAnnounced(ip)) if table.get(ip).is_some() => {
                        self.counters.drops[stats::SLOT_INTERFACE_NOT_SELECTED] += 1;
                    }
                    Decision::Drop(reason) => self.counters.drops[stats::drop_slot(&reason)] += 1,
                }
            }
            let mut at = 0;
            while at < self.reply_frames.len() {
                match interface.socket.send_some(&self.reply_frames[at..]) {
                    Ok(sent) if sent > 0 => {
                        for ip in &self.reply_ips[at..at + sent] {
                            self.counters.ip(*ip).responses_sent += 1;
                        }
                        at += sent;
                    }
                    // The frame at `at` was refused (e.g. a full send queue): skip it, try the rest.
                    _ => {
                        self.counters.send_errors += 1;
                        at += 1;
                    }
                }
            }
            if received < crate::sys::BATCH {
                // The queue is drained: skip the receive that would only say so (poll reports new frames).
                break;
            }
        }
        any
    }

    fn send_due_announcements(&mut self, now: Instant) {
        let due = self.schedules.take_due(now);
        // Muted: the schedule runs on, silently (unmuting starts a fresh one).
        if due.is_empty() || self.muted {
            return;
        }
        let view = self.shared.view.load_full();
        for (ip, position) in due {
            if !view.table.get(ip).is_some_and(|set| set.contains(position)) {
                continue;
            }
            let Some(interface) = self.interfaces.get(position).and_then(Option::as_ref) else { continue };
            let Ok(frames) = announcement(ip, &interface.core) else { continue };
            for frame in &frames {
                match interface.socket.send(frame) {
                    Ok(()) => self.counters.ip(ip).gratuitous_sent += 1,
                    Err(_) => self.counters.send_errors += 1,
                }
            }
        }
    }
}
