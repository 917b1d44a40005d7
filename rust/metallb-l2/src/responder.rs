//! The responder: one thread that owns the sockets, answers requests and sends gratuitous announcements.
//!
//! The thread waits in poll() on one packet socket per interface and an eventfd. The API side ([`Responder`])
//! never touches a socket: it sends a command over a channel, writes the eventfd and waits for the thread's
//! answer, so every side effect (joining a group, a gratuitous burst) has happened when `announce` returns, and
//! `stop` wakes the thread at once. The announce set is an immutable [`AnnounceTable`] behind an [`ArcSwap`]:
//! the thread publishes a new table on announce and withdraw, and loads the current one once per batch of
//! frames, lock-free; `announced()` reads it from any thread.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use metallb_core::l2::{announcement, decide, Decision, DropReason};
use metallb_core::packet::{solicited_node_mac, FrameBuf};
use metallb_sys::worker::{lock, panic_message};
use metallb_sys::{EventFd, Poller};

use crate::iface::{self, InterfaceInfo, OpenInterface};
use crate::schedule::{GratuitousPolicy, Schedules};
use crate::stats::{self, Counters, Stats};
use crate::sys::{GroupSocket, RecvBatch, PACKET_OUTGOING};
use crate::table::{wanted_groups, AnnounceTable, InterfaceSet, MAX_INTERFACES};
use crate::L2Error;

/// How long an API call waits for the thread's answer before deciding it is gone.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(5);
/// Batches read from one socket before the thread looks at commands and other sockets again.
const MAX_BATCHES_PER_WAKE: usize = 16;

/// What to serve and how.
#[derive(Clone, Debug)]
pub struct ResponderConfig {
    /// Interface names, in the namespace the responder runs in.
    pub interfaces: Vec<String>,
    /// A namespace under /var/run/netns to open the sockets in; `None` for the caller's.
    pub netns: Option<String>,
    pub gratuitous: GratuitousPolicy,
    /// Receive and send buffer of each socket, in bytes (best effort above `net.core.rmem_max` without
    /// CAP_NET_ADMIN). The receive buffer is what absorbs a burst of requests while the thread is descheduled.
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
        if self.interfaces.len() > MAX_INTERFACES {
            return Err(L2Error::InvalidConfig(format!("a responder serves at most {MAX_INTERFACES} interfaces")));
        }
        for (i, name) in self.interfaces.iter().enumerate() {
            if self.interfaces[..i].contains(name) {
                return Err(L2Error::InvalidConfig(format!("interface {name:?} is listed twice")));
            }
        }
        Ok(())
    }
}

enum Command {
    Announce { ip: IpAddr, interfaces: InterfaceSet, reply: SyncSender<bool> },
    Withdraw { ip: IpAddr, reply: SyncSender<bool> },
    Stats { reply: SyncSender<Stats> },
}

struct Shared {
    table: ArcSwap<AnnounceTable>,
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
    interfaces: Vec<InterfaceInfo>,
    netns: Option<String>,
}

impl Responder {
    /// Starts the thread, which enters the namespace and opens every interface; returns once it is answering,
    /// or with the first error (missing interface, no permission, no MAC, bad namespace).
    pub fn start(config: ResponderConfig) -> Result<Self, L2Error> {
        config.validate()?;
        let wake = Arc::new(EventFd::new().map_err(|e| L2Error::io("creating an eventfd", "CAP_NET_RAW", e))?);
        let shared = Arc::new(Shared {
            table: ArcSwap::from_pointee(AnnounceTable::default()),
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
                    let _ = ready_tx.send(Ok(worker.interfaces.iter().map(|i| i.info.clone()).collect()));
                    if let Err(err) = worker.run() {
                        *lock(&worker.shared.failure) = Some(err);
                    }
                })
                .map_err(|e| L2Error::io("starting the responder thread", "CAP_NET_RAW", e))?
        };
        match ready_rx.recv() {
            Ok(Ok(interfaces)) => Ok(Responder {
                shared,
                commands: Mutex::new(command_tx),
                wake,
                thread: Mutex::new(Some(thread)),
                interfaces,
                netns,
            }),
            Ok(Err(err)) => {
                let _ = thread.join();
                Err(err)
            }
            Err(_) => Err(L2Error::Stopped(panic_message(thread.join().err(), "it ended before opening its sockets"))),
        }
    }

    /// Answers for `ip` on `interfaces` (names; `None`: all of the responder's) from now on, and sends
    /// gratuitous frames at once and on the schedule. Returns false when `ip` was already announced on
    /// exactly these interfaces (nothing is sent again).
    pub fn announce(&self, ip: IpAddr, interfaces: Option<&[String]>) -> Result<bool, L2Error> {
        check_announceable(ip)?;
        let set = match interfaces {
            None => InterfaceSet::all(self.interfaces.len()),
            Some(names) => self.interface_set(names)?,
        };
        if set.is_empty() {
            return Err(L2Error::InvalidConfig(format!("announcing {ip} on no interface: give at least one")));
        }
        self.call(|reply| Command::Announce { ip, interfaces: set, reply })
    }

    /// Stops answering for `ip` (done when this returns), its schedule and its group memberships. Returns
    /// whether it was announced.
    pub fn withdraw(&self, ip: IpAddr) -> Result<bool, L2Error> {
        self.call(|reply| Command::Withdraw { ip, reply })
    }

    /// The announced addresses with the names of the interfaces each is answered on, sorted.
    pub fn announced(&self) -> BTreeMap<IpAddr, Vec<String>> {
        let table = self.shared.table.load();
        table
            .iter()
            .map(|(ip, set)| {
                (ip, set.positions().filter_map(|p| self.interfaces.get(p)).map(|i| i.name.clone()).collect())
            })
            .collect()
    }

    pub fn stats(&self) -> Result<Stats, L2Error> {
        self.call(|reply| Command::Stats { reply })
    }

    pub fn interfaces(&self) -> &[InterfaceInfo] {
        &self.interfaces
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

    fn interface_set(&self, names: &[String]) -> Result<InterfaceSet, L2Error> {
        let positions = names
            .iter()
            .map(|name| {
                self.interfaces.iter().position(|i| &i.name == name).ok_or_else(|| L2Error::UnknownInterface {
                    name: name.clone(),
                    known: self.interfaces.iter().map(|i| i.name.clone()).collect(),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(InterfaceSet::from_positions(positions))
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
    interfaces: Vec<OpenInterface>,
    groups: Option<GroupSocket>,
    joined: BTreeMap<(usize, Ipv6Addr), Membership>,
    shared: Arc<Shared>,
    commands: Receiver<Command>,
    wake: Arc<EventFd>,
    poller: Poller,
    schedules: Schedules<IpAddr>,
    policy: GratuitousPolicy,
    busy_poll: Duration,
    counters: Counters,
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
        let interfaces = config
            .interfaces
            .iter()
            .map(|name| iface::open(name, config.netns.as_deref(), config.socket_buffer))
            .collect::<Result<Vec<_>, _>>()?;
        // Without IPv6 in the kernel there is no AF_INET6 socket: groups fall back to Ethernet memberships.
        let groups = GroupSocket::new().ok();
        let poller = {
            use std::os::fd::AsFd;
            let mut fds = vec![wake.as_fd()];
            fds.extend(interfaces.iter().map(|i| i.socket.as_fd()));
            Poller::new(&fds)
        };
        Ok(Worker {
            interfaces,
            groups,
            joined: BTreeMap::new(),
            shared,
            commands,
            wake,
            poller,
            schedules: Schedules::default(),
            policy: config.gratuitous,
            busy_poll: config.busy_poll,
            counters: Counters::default(),
            batch: RecvBatch::new(false),
            reply_frames: Vec::with_capacity(crate::sys::BATCH),
            reply_ips: Vec::with_capacity(crate::sys::BATCH),
        })
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
            if self.poller.is_ready(0) {
                self.wake.drain();
                if self.shared.stop.load(Ordering::SeqCst) {
                    return Ok(());
                }
                while let Ok(command) = self.commands.try_recv() {
                    self.handle(command);
                }
            }
            let mut busy = false;
            for position in 0..self.interfaces.len() {
                if self.poller.is_ready(position + 1) {
                    busy |= self.answer(position);
                }
            }
            if busy && !self.busy_poll.is_zero() {
                spin_until = Some(Instant::now() + self.busy_poll);
            }
            self.send_due_announcements(Instant::now());
        }
    }

    fn handle(&mut self, command: Command) {
        match command {
            Command::Announce { ip, interfaces, reply } => {
                let current = self.shared.table.load_full();
                let changed = current.get(ip) != Some(interfaces);
                if changed {
                    self.publish(current.with(ip, interfaces));
                    let now = Instant::now();
                    self.schedules.start(ip, self.policy, now);
                    self.send_due_announcements(now);
                }
                let _ = reply.send(changed);
            }
            Command::Withdraw { ip, reply } => {
                let current = self.shared.table.load_full();
                let present = current.get(ip).is_some();
                if present {
                    self.publish(current.without(ip));
                    self.schedules.cancel(ip);
                }
                let _ = reply.send(present);
            }
            Command::Stats { reply } => {
                for interface in &self.interfaces {
                    self.counters.kernel_drops += interface.socket.take_drops().unwrap_or(0);
                }
                let _ = reply.send(self.counters.snapshot());
            }
        }
    }

    /// Swaps in `table` and makes the group memberships match it.
    fn publish(&mut self, table: AnnounceTable) {
        let wanted = wanted_groups(&table);
        // Join before answering starts (so the first solicitation reaches us) and leave after it stops.
        let new: Vec<_> = wanted.iter().filter(|key| !self.joined.contains_key(key)).copied().collect();
        for (position, group) in new {
            if let Some(membership) = self.join(position, group) {
                self.joined.insert((position, group), membership);
            }
        }
        self.shared.table.store(Arc::new(table));
        let stale: Vec<_> = self.joined.keys().filter(|key| !wanted.contains(key)).copied().collect();
        for (position, group) in stale {
            if let Some(membership) = self.joined.remove(&(position, group)) {
                self.leave(position, group, membership);
            }
        }
    }

    fn join(&mut self, position: usize, group: Ipv6Addr) -> Option<Membership> {
        let interface = &self.interfaces[position];
        if let Some(groups) = &self.groups {
            if groups.join(group, interface.info.index).is_ok() {
                return Some(Membership::Ipv6);
            }
        }
        self.counters.group_fallbacks += 1;
        match interface.socket.add_multicast(solicited_node_mac(group).octets()) {
            Ok(()) => Some(Membership::Ethernet),
            Err(_) => {
                self.counters.socket_errors += 1;
                None
            }
        }
    }

    fn leave(&mut self, position: usize, group: Ipv6Addr, membership: Membership) {
        let interface = &self.interfaces[position];
        let left = match (membership, &self.groups) {
            (Membership::Ipv6, Some(groups)) => groups.leave(group, interface.info.index),
            (Membership::Ipv6, None) => Ok(()),
            (Membership::Ethernet, _) => interface.socket.drop_multicast(solicited_node_mac(group).octets()),
        };
        if left.is_err() {
            self.counters.socket_errors += 1;
        }
    }

    /// Reads what is queued on interface `position` (a bounded number of batches) and answers it. Returns
    /// whether there was anything.
    fn answer(&mut self, position: usize) -> bool {
        let table = self.shared.table.load_full();
        let announced = table.on_interface(position);
        let mut any = false;
        for _ in 0..MAX_BATCHES_PER_WAKE {
            let interface = &self.interfaces[position];
            let received = match interface.socket.recv_batch(&mut self.batch) {
                Ok(0) => return any,
                Ok(n) => n,
                Err(err) => {
                    // ENETDOWN when the link goes down is reported once; the socket works again once it is
                    // up. Anything else is counted too: the thread keeps serving the other interfaces.
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
                match decide(frame, &announced, &interface.core) {
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
        if due.is_empty() {
            return;
        }
        let table = self.shared.table.load_full();
        for ip in due {
            let Some(set) = table.get(ip) else { continue };
            for position in set.positions() {
                let interface = &self.interfaces[position];
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
}
